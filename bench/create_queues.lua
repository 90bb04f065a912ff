-- Population: create queues <prefix><zero-padded counter> through the HTTP API.
-- wrk args: <app path> <app key> <queue count> <name width> <wrk thread count>
-- Thread i creates the names i, i+T, i+2T, ... . When a thread has its share acknowledged it
-- prints BENCH_POPULATE_DONE and stops; bench/run.py interrupts wrk once every thread did.
-- Connections with nothing left to create ask for /__lbheartbeat__ (200, not counted).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

setup = common.setup
done = common.done

local path, total, width, nthreads
local next_index, answered, share = 0, 0, 0
local filler, form_fmt, form_headers
local verified = false
created = 0
progress_step = 100000

function init(raw)
  local args = common.args(raw)
  path = args[1]
  total = tonumber(args[3])
  width = tonumber(args[4])
  form_fmt = "queue_name=q%0" .. width .. "d&partitions=1"
  nthreads = tonumber(args[5])
  next_index = thread_index or 0
  for i = next_index, total - 1, nthreads do
    share = share + 1
  end
  form_headers = {
    ["Authorization"] = "Application " .. args[2],
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }
  filler = wrk.format("GET", "/__lbheartbeat__", {})
  if share == 0 then
    common.emit("BENCH_POPULATE_DONE", { thread = thread_index, created = 0 })
  end
end

function request()
  -- wrk calls request() once in thread 0 before the run, to check the request it makes:
  -- give it a filler so that no queue name is consumed without being sent.
  if not verified then
    verified = true
    if (thread_index or 0) == 0 then
      return filler
    end
  end
  if next_index >= total then
    return filler
  end
  local body = string.format(form_fmt, next_index)
  next_index = next_index + nthreads
  return wrk.format("POST", path, form_headers, body)
end

local check = common.checker("", 0, 0)

function response(status, headers, body)
  if status == 200 then
    return -- a filler heartbeat
  end
  check(status, headers, body)
  answered = answered + 1
  if status == 201 then
    created = created + 1
    if created % progress_step == 0 then
      common.emit("BENCH_PROGRESS", { thread = thread_index, created = created })
    end
  end
  if answered == share then
    common.emit("BENCH_POPULATE_DONE", { thread = thread_index, created = created })
    wrk.thread:stop()
  end
end
