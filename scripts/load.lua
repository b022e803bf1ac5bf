-- wrk script: POST one real Falco alert (fixture 01) with a bearer token, keep-alive.
-- TEFLON_BATCH=N sends N copies of it per request as JSON Lines (scripts/overload.sh).
local f = assert(io.open(os.getenv("TEFLON_ALERT") or "teflon-server/tests/fixtures/falco/01-terminal-shell-k8s-pod-syscall.json", "r"))
local body = f:read("*a")
f:close()
local batch = tonumber(os.getenv("TEFLON_BATCH") or "1")
if batch > 1 then
  local line = body:gsub("\n", "")
  local lines = {}
  for i = 1, batch do lines[i] = line end
  body = table.concat(lines, "\n") .. "\n"
end
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("TEFLON_TOKEN") or "bench-token")

local statuses = {}
response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

done = function(summary, latency, requests)
  io.write(string.format("RESULT req_per_sec=%.0f p50_ms=%.3f p99_ms=%.3f requests=%d errors_status=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, summary.errors.status))
end
