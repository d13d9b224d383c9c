-- wrk script for bench/ingest.py: every thread posts its own pre-signed deliveries, each once.
--
--   wrk -t T -c C -d D -s bench/wrk_requests.lua http://127.0.0.1:PORT -- REQUEST_DIR
--
-- Thread n reads REQUEST_DIR/requests-<n>.tsv, one delivery a line, tab-separated:
--   X-Shopify-Webhook-Id, X-Shopify-Event-Id, X-Shopify-Triggered-At, X-Shopify-Hmac-Sha256, body
-- (the body is compact JSON, which holds no raw tab or newline). Files are disjoint, so no
-- delivery is sent twice. Lines are read as they are needed: the whole set would not fit a
-- LuaJIT heap, and reading a line costs nothing next to an HTTP round trip.
--
-- done() prints one line "ORDERHUB_BENCH <json>" that ingest.py parses.

local threads = {}
local thread_count = 0

function setup(thread)
   thread:set("tid", thread_count)
   thread_count = thread_count + 1
   table.insert(threads, thread)
end

-- Per-thread state; globals so that done() can read them with thread:get().
sent = 0        -- request() calls that returned a delivery
exhausted = 0   -- request() calls after this thread's file ran out
accepted = 0    -- 2xx answers whose body says "accepted": the orders acknowledged
other_2xx = 0   -- 2xx answers that say anything else (duplicate, quarantined, ...)
statuses = {}   -- answers by HTTP status

local file
local headers = {}

function init(args)
   file = assert(io.open(args[1] .. "/requests-" .. tid .. ".tsv", "rb"))
   -- What Shopify sends with every delivery; the per-delivery ones are set in request().
   headers["Content-Type"] = "application/json"
   headers["User-Agent"] = "Shopify-Captain-Hook"
   headers["Accept"] = "*/*"
   headers["X-Shopify-Topic"] = "orders/create"
   headers["X-Shopify-Shop-Domain"] = "garden-goods.myshopify.com"
   headers["X-Shopify-API-Version"] = "2026-10"
end

function request()
   local line = file:read("*l")
   if line == nil then
      -- Out of deliveries: never repeat one. This path answers 404 in both apps; ingest.py
      -- reports these and fails the run, asking for more orders.
      exhausted = exhausted + 1
      return wrk.format("GET", "/bench-requests-exhausted", {}, nil)
   end
   local t1 = string.find(line, "\t", 1, true)
   local t2 = string.find(line, "\t", t1 + 1, true)
   local t3 = string.find(line, "\t", t2 + 1, true)
   local t4 = string.find(line, "\t", t3 + 1, true)
   headers["X-Shopify-Webhook-Id"] = string.sub(line, 1, t1 - 1)
   headers["X-Shopify-Event-Id"] = string.sub(line, t1 + 1, t2 - 1)
   headers["X-Shopify-Triggered-At"] = string.sub(line, t2 + 1, t3 - 1)
   headers["X-Shopify-Hmac-Sha256"] = string.sub(line, t3 + 1, t4 - 1)
   sent = sent + 1
   return wrk.format("POST", "/webhooks/shopify", headers, string.sub(line, t4 + 1))
end

function response(status, _, body)
   statuses[status] = (statuses[status] or 0) + 1
   if status >= 200 and status < 300 then
      if body and string.find(body, '"status":"accepted"', 1, true) then
         accepted = accepted + 1
      else
         other_2xx = other_2xx + 1
      end
   end
end

function done(summary, latency, _)
   local total = { sent = 0, exhausted = 0, accepted = 0, other_2xx = 0 }
   local by_status = {}
   for _, thread in ipairs(threads) do
      for name, _ in pairs(total) do
         total[name] = total[name] + thread:get(name)
      end
      for status, count in pairs(thread:get("statuses")) do
         by_status[status] = (by_status[status] or 0) + count
      end
   end
   local status_json = {}
   for status, count in pairs(by_status) do
      table.insert(status_json, string.format('"%d":%d', status, count))
   end
   local e = summary.errors
   io.write(string.format(
      'ORDERHUB_BENCH {"threads":%d,"duration_us":%d,"responses":%d,"sent":%d,'
      .. '"exhausted":%d,"accepted":%d,"other_2xx":%d,"statuses":{%s},'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f}}\n',
      thread_count, summary.duration, summary.requests, total.sent, total.exhausted,
      total.accepted, total.other_2xx, table.concat(status_json, ","),
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max, latency.mean))
end
