-- wrk script: POST /message with real telemetry strings, a different message each time.
-- The strings (base64) are read from the file named by $BENCH_STRINGS, one per line.
local strings = {}
for line in io.lines(os.getenv("BENCH_STRINGS")) do strings[#strings + 1] = line end
local counter = 0
local run = os.time()  -- message ids differ between the warm-up and the measured run
thread_no = 0  -- a global: setup() sets it per thread with thread:set
local threads = {}

function setup(thread)
  thread:set("thread_no", #threads)
  table.insert(threads, thread)
end

function request()
  counter = counter + 1
  local now = os.time()
  local s = strings[((counter * 7919 + thread_no * 104729) % #strings) + 1]
  local body = string.format(
    '{"callsign":"BENCH%d","type":"RECEIVED_TELEM","time_created":%d,' ..
    '"time_uploaded":%d,"data":{"string":"%s","frequency":434075000},"message_id":"%d-%d-%d"}',
    thread_no, now - (counter % 5), now, s, run, thread_no, counter)
  -- nil path: the path of the URL given to wrk (/message, or /habitat/message via nginx)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
