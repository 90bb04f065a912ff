-- Scenario "queue-get": GET messages from a random queue among many.
-- wrk args: <app path> <app key> <seeded queue count> <stride> <name width> <limit> <messages per queue>
-- Queues q<k*stride> for k in 0 .. seeded-1 hold <messages per queue> messages each; every
-- response must hold exactly that many.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

setup = common.setup
done = common.done

local app_path, name_fmt, seeded, stride, suffix

function init(raw)
  local args = common.args(raw)
  app_path = args[1]
  seeded = tonumber(args[3])
  stride = tonumber(args[4])
  name_fmt = "/q%0" .. tonumber(args[5]) .. "d"
  suffix = "?limit=" .. tonumber(args[6])
  local per_queue = tonumber(args[7])
  wrk.headers["Authorization"] = "Application " .. args[2]
  response = common.checker('"message_id"', per_queue, per_queue)
  math.randomseed(os.time() + 7919 * (thread_index or 0))
end

function request()
  local index = math.random(0, seeded - 1) * stride
  return wrk.format("GET", app_path .. string.format(name_fmt, index) .. suffix)
end
