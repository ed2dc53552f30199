-- wrk script for the scoring API: POST /api/v1/ml/predict/fraud with a fresh transaction_id per request.
-- Wallets, events and tickets come from benchmarks' sample file (one "wallet,event,ticket" per line) so the
-- online features read real history; without it, random new wallets are used.
-- usage: wrk -t2 -c32 -d30s -R1000 -s benchmarks/bench_api.lua http://127.0.0.1:5001   (wrk2-style -R is
-- not in Debian's wrk: the open-loop sweep in bench_api.py paces with its own generator instead)

local counter = 0
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
  local path = os.getenv("TG_SAMPLES") or "/tmp/ticketguard-bench-samples.csv"
  local f = io.open(path, "r")
  if f then
    for line in f:lines() do
      local w, e, t = line:match("([^,]+),([^,]+),([^,]+)")
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
