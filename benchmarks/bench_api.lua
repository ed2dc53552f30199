-- wrk script for the scoring API: POST /api/v1/ml/predict/fraud with a fresh transaction_id per request.
-- Wallets, events and tickets come from benchmarks' sample file (one "wallet,event,ticket" per line) so the
-- online features read real history; without it, random new wallets are used.
-- usage: wrk -t2 -c32 -d30s -s benchmarks/bench_api.lua http://127.0.0.1:5001
-- TG_RATE=<requests/s> paces the connections: each waits an exponential gap of mean c/rate seconds between
-- its requests (Debian's wrk has no wrk2-style -R), so the offered rate is at most TG_RATE;
-- benchmarks/bench_api.py reports the achieved rate next to it. done() prints one JSON line (prefix "WRK_JSON ") with the percentiles.

local counter = 0
local pace_ms = nil
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local samples = {}
local prefix = ""

function init(args)
  math.randomseed(os.time() * 100 + tid)
  prefix = (args[1] or "wrk") .. "-" .. tostring(os.time()) .. "-" .. tostring(tid) .. "-"
  local rate = tonumber(os.getenv("TG_RATE") or "")
  local conns = tonumber(os.getenv("TG_CONNECTIONS") or "")
  if rate and conns and rate > 0 then pace_ms = math.floor(conns * 1000 / rate) end
  local path = os.getenv("TG_SAMPLES") or "/tmp/ticketguard-bench-samples.csv"
  local f = io.open(path, "r")
  if f then
    for line in f:lines() do
      local w, e, t = line:match("([^,]+),([^,]+),([^,\r]+)")
      if w then samples[#samples + 1] = { w, e, t } end
    end
    f:close()
  end
end

local function hex(n)
  local s = {}
  for i = 1, n do s[i] = string.format("%x", math.random(0, 15)) end
  return table.concat(s)
end

function delay()
  -- Exponential gaps (a Poisson stream per connection): fixed gaps keep the connections in phase and turn
  -- the offered rate into bursts of one request per connection.
  if not pace_ms then return 0 end
  return math.floor(-math.log(1 - math.random()) * pace_ms)
end

function request()
  counter = counter + 1
  local wallet, event, ticket
  if #samples > 0 then
    local s = samples[math.random(1, #samples)]
    wallet, event, ticket = s[1], s[2], s[3]
  else
    wallet, event, ticket = "0x" .. hex(40), "evt_bench", "evt_bench-" .. counter
  end
  local body = string.format(
    '{"transaction_id":"%s%d","wallet_address":"%s","ticket_id":"%s","event_id":"%s",' ..
    '"price_paid":%d.50,"payment_method":"card","ip_address":"10.%d.%d.%d"}',
    prefix, counter, wallet, ticket, event, math.random(20, 400),
    math.random(0, 255), math.random(0, 255), math.random(1, 254))
  return wrk.format("POST", "/api/v1/ml/predict/fraud", { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
  if status ~= 200 then
    io.stderr:write("status " .. status .. ": " .. body:sub(1, 200) .. "\n")
  end
end

function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"errors":%d,"status_errors":%d,"timeouts":%d,' ..
    '"p50_ms":%.3f,"p90_ms":%.3f,"p95_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f}\n',
    summary.requests, summary.duration, errors, summary.errors.status, summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
