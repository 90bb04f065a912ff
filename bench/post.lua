-- Scenario "post": one raw message per request (the original load tester's shape).
-- wrk args: <path> <app key> <message body>
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

setup = common.setup
done = common.done
response = common.checker('"key"', 1, 1)

function init(raw)
  local args = common.args(raw)
  wrk.method = "POST"
  wrk.path = args[1]
  wrk.headers["Authorization"] = "Application " .. args[2]
  wrk.headers["Content-Type"] = "text/plain"
  wrk.body = args[3]
end
