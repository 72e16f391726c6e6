-- wrk script: POST /messages with batches of $BENCH_BATCH real telemetry strings,
-- every message different, from the file named by $BENCH_STRINGS (base64, one a line).
local strings = {}
for line in io.lines(os.getenv("BENCH_STRINGS")) do strings[#strings + 1] = line end
local size = tonumber(os.getenv("BENCH_BATCH") or "100")
local counter = 0
local run = os.time()  -- message ids differ between the warm-up and the measured run
thread_no = 0  -- a global: setup() sets it per thread with thread:set
local threads = {}

function setup(thread)
  thread:set("thread_no", #threads)
  table.insert(threads, thread)
end

function request()
  local now = os.time()
  local items = {}
  for i = 1, size do
    counter = counter + 1
    local s = strings[((counter * 7919 + thread_no * 104729) % #strings) + 1]
    items[i] = string.format(
      '{"callsign":"BENCH%d","type":"RECEIVED_TELEM","time_created":%d,' ..
      '"time_uploaded":%d,"data":{"string":"%s"},"message_id":"%d-%d-%d"}',
      thread_no, now - 1, now, s, run, thread_no, counter)
  end
  local body = "[" .. table.concat(items, ",") .. "]"
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
