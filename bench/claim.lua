-- Scenario "claim": work-queue consumption, claim+ack cycles.
-- wrk args: <queue path> <app key> <messages per claim>
-- A connection that has no ack to send claims <n> messages (POST <path>/claims); the claim
-- ids of each answer are queued, and the next request of any connection acknowledges them
-- (DELETE <path>/claims/<ids>). Items are the messages acknowledged; every claim must bring
-- <n> messages (the queue is filled beforehand) and every ack must ack all of them.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

setup = common.setup
done = common.done

local path = ""
local per_claim = 0
local claim_request = ""
local auth = {}
local pending = {}

function init(raw)
  local args = common.args(raw)
  path = args[1]
  per_claim = tonumber(args[3])
  -- wrk.format's headers replace wrk.headers, so each request names its own.
  auth = { ["Authorization"] = "Application " .. args[2] }
  claim_request = wrk.format(
    "POST", path .. "/claims",
    { ["Authorization"] = auth["Authorization"],
      ["Content-Type"] = "application/x-www-form-urlencoded" },
    "limit=" .. per_claim .. "&ttl=300"
  )
end

function request()
  local ids = table.remove(pending)
  if ids then
    return wrk.format("DELETE", path .. "/claims/" .. ids, auth)
  end
  return claim_request
end

local function bad(text)
  bad_items = bad_items + 1
  if first_bad == "" then
    first_bad = text
  end
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status < 200 or status >= 300 then
    if first_bad == "" then
      first_bad = string.format("HTTP %d: %s", status, body:sub(1, 300))
    end
    return
  end
  if body:find('"acked"', 1, true) then
    local n = common.count(body, '","') + 1
    items = items + n
    return
  end
  local ids = {}
  for id in body:gmatch('"claim_id":"(%x+)"') do
    ids[#ids + 1] = id
  end
  if #ids ~= per_claim then
    bad(string.format("claim brought %d messages (want %d): %s", #ids, per_claim, body:sub(1, 200)))
  end
  if #ids > 0 then
    pending[#pending + 1] = table.concat(ids, ",")
  end
end
