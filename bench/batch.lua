-- Scenario "batch": a JSON batch of messages per request.
-- wrk args: <path> <app key> <file holding the JSON body> <messages per batch>
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

setup = common.setup
done = common.done

function init(raw)
  local args = common.args(raw)
  local f = assert(io.open(args[3], "rb"))
  local body = f:read("*a")
  f:close()
  local per_batch = tonumber(args[4])
  wrk.method = "POST"
  wrk.path = args[1]
  wrk.headers["Authorization"] = "Application " .. args[2]
  wrk.headers["Content-Type"] = "application/json"
  wrk.body = body
  response = common.checker('"key"', per_batch, per_batch)
end
