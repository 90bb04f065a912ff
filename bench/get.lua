-- Scenario "get": GET limit=N messages from random positions of a pre-filled queue.
-- wrk args: <path> <app key> <file of message ids, one a line> <limit>
-- Each request reads `since=<random id>`; the file only holds ids with at least <limit>
-- messages after them, so every response must hold exactly <limit> messages.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

setup = common.setup
done = common.done

local ids = {}
local prefix = ""

function init(raw)
  local args = common.args(raw)
  for line in io.lines(args[3]) do
    if #line > 0 then
      ids[#ids + 1] = line
    end
  end
  local limit = tonumber(args[4])
  prefix = args[1] .. "?limit=" .. limit .. "&since="
  wrk.headers["Authorization"] = "Application " .. args[2]
  response = common.checker('"message_id"', limit, limit)
  math.randomseed(os.time() + 7919 * (thread_index or 0))
end

function request()
  return wrk.format("GET", prefix .. ids[math.random(#ids)])
end
