-- Scenario "list": GET /v1/<app>?limit=L&offset=<random existing queue name>.
-- wrk args: <app path> <app key> <queue count> <name width> <limit> <min items> <max items>
-- Offsets are drawn from 0 .. count-1, or from 0 .. count-limit when min items == limit, so
-- that every page is full.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

setup = common.setup
done = common.done

local prefix, name_fmt, top

function init(raw)
  local args = common.args(raw)
  local count = tonumber(args[3])
  local width = tonumber(args[4])
  local limit = tonumber(args[5])
  local min_items = tonumber(args[6])
  local max_items = tonumber(args[7])
  top = count - 1
  if min_items >= limit then
    top = count - limit
  end
  prefix = args[1] .. "?limit=" .. limit .. "&offset="
  name_fmt = "q%0" .. width .. "d"
  wrk.headers["Authorization"] = "Application " .. args[2]
  response = common.checker('"queue_name"', min_items, max_items)
  math.randomseed(os.time() + 7919 * (thread_index or 0))
end

function request()
  return wrk.format("GET", prefix .. string.format(name_fmt, math.random(0, top)))
end
