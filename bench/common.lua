-- Shared helpers for the Queuey wrk scripts (loaded with dofile by each scenario script).
--
-- Every scenario counts, in each wrk thread, the status codes it got and the "items" found in
-- each 2xx body (a needle such as `"message_id"` counted per response), and checks that each
-- 2xx body holds between `min` and `max` items. done() aggregates the threads and prints one
-- line `BENCH_JSON {...}` that bench/run.py parses: requests, duration, socket errors, status
-- histogram, items, bad responses and latency percentiles in microseconds.

local M = {}

-- Per-thread state. Globals, so that the main Lua state can read them with thread:get().
statuses = {}
items = 0
bad_items = 0
first_bad = ""

-- Arguments after `--` on the wrk command line, as a plain 1-based list of strings.
function M.args(raw)
  local out = {}
  for i = 1, #raw do
    out[#out + 1] = raw[i]
  end
  return out
end

function M.count(body, needle)
  local n, pos = 0, 1
  while true do
    local s, e = string.find(body, needle, pos, true)
    if not s then
      return n
    end
    n = n + 1
    pos = e + 1
  end
end

-- A response() that tallies statuses and items; min/max bound the items in each 2xx body.
function M.checker(needle, min, max)
  return function(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
    if status >= 200 and status < 300 then
      local n = 0
      if needle ~= "" then
        n = M.count(body, needle)
      end
      items = items + n
      if n < min or n > max then
        bad_items = bad_items + 1
        if first_bad == "" then
          first_bad = string.format("%d items (want %d..%d): %s", n, min, max, body:sub(1, 300))
        end
      end
    elseif first_bad == "" then
      first_bad = string.format("HTTP %d: %s", status, body:sub(1, 300))
    end
  end
end

local threads = {}

function M.setup(thread)
  thread:set("thread_index", #threads)
  threads[#threads + 1] = thread
end

local function encode(value)
  local t = type(value)
  if t == "number" then
    if value ~= value or value == math.huge or value == -math.huge then
      return "null"
    end
    return string.format("%.17g", value)
  elseif t == "string" then
    local escaped = value:gsub('[%c"\\]', function(c)
      return string.format("\\u%04x", c:byte())
    end)
    return '"' .. escaped .. '"'
  elseif t == "boolean" then
    return tostring(value)
  elseif t == "table" then
    local parts = {}
    for k, v in pairs(value) do
      parts[#parts + 1] = encode(tostring(k)) .. ":" .. encode(v)
    end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  return "null"
end

function M.emit(tag, value)
  io.write(tag, " ", encode(value), "\n")
  io.stdout:flush()
end

function M.done(summary, latency, requests)
  local all = {}
  local total_items, total_bad, bad = 0, 0, ""
  for _, thread in ipairs(threads) do
    for code, n in pairs(thread:get("statuses")) do
      all[code] = (all[code] or 0) + n
    end
    total_items = total_items + thread:get("items")
    total_bad = total_bad + thread:get("bad_items")
    if bad == "" then
      bad = thread:get("first_bad")
    end
  end
  local lat = {
    mean = latency.mean,
    stdev = latency.stdev,
    max = latency.max,
    p50 = latency:percentile(50),
    p90 = latency:percentile(90),
    p99 = latency:percentile(99),
    p999 = latency:percentile(99.9),
  }
  M.emit("BENCH_JSON", {
    requests = summary.requests,
    duration_us = summary.duration,
    bytes = summary.bytes,
    errors = summary.errors,
    statuses = all,
    items = total_items,
    bad_items = total_bad,
    first_bad = bad,
    latency_us = lat,
  })
end

return M
