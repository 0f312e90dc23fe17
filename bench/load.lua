-- wrk script of `make bench`: POST a rotating set of prepared JSON bodies (one per line of
-- the file named by the first script argument) and print one machine-readable summary line.
local prepared = {}
local count = 0
local next_index = 0

function init(args)
  local path = args[1]
  local headers = { ["Content-Type"] = "application/json" }
  for line in io.lines(path) do
    count = count + 1
    prepared[count] = wrk.format("POST", nil, headers, line)
  end
  if count == 0 then
    error("no request bodies in " .. tostring(path))
  end
end

function request()
  next_index = next_index % count + 1
  return prepared[next_index]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
