-- Mixed load for bench/soak.sh: context writes and listings, exec (plain and as an SSE stream),
-- and small transfers both ways. Every request is one that succeeds, so any answer other than
-- 2xx or a configured 429 is a defect. Counts go to per-thread globals read in done().
local key = os.getenv("LOOPSY_KEY")
local dir = os.getenv("SOAK_DIR")
local threads = {}
local counter = 0
local payload = string.rep("0123456789abcdef", 256)  -- 4 KiB per push

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  ok, limited, other, last_other = 0, 0, 0, ""
  math.randomseed(id * 7919)
end

local function format(method, path, body, content_type)
  local headers = { ["Authorization"] = "Bearer " .. key, ["Host"] = "127.0.0.1" }
  if content_type then headers["Content-Type"] = content_type end
  return wrk.format(method, path, headers, body)
end

function request()
  counter = counter + 1
  local pick = math.random(100)
  if pick <= 35 then
    return format("PUT", "/api/v1/context/soak:" .. id .. ":" .. math.random(500),
                  '{"value":"v' .. counter .. '","ttl":120}', "application/json")
  elseif pick <= 60 then
    return format("GET", "/api/v1/context?prefix=soak:" .. id .. ":1&limit=50")
  elseif pick <= 72 then
    return format("POST", "/api/v1/execute", '{"command":"echo","args":["soak"]}', "application/json")
  elseif pick <= 80 then
    return format("POST", "/api/v1/execute/stream", '{"command":"echo","args":["sse"]}', "application/json")
  elseif pick <= 90 then
    return format("POST", "/api/v1/transfer/pull", '{"sourcePath":"' .. dir .. '/small.bin"}', "application/json")
  else
    local body = "--soakB\r\nContent-Disposition: form-data; name=\"destPath\"\r\n\r\n" .. dir .. "/up-" .. id
      .. "-" .. (counter % 8) .. ".bin\r\n--soakB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n"
      .. "Content-Type: application/octet-stream\r\n\r\n" .. payload .. "\r\n--soakB--\r\n"
    return format("POST", "/api/v1/transfer/push?overwrite=true", body, "multipart/form-data; boundary=soakB")
  end
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
  elseif status == 429 then
    limited = limited + 1
  else
    other = other + 1
    last_other = status .. " " .. string.sub(body or "", 1, 160)
  end
end

function done(summary, latency, requests)
  local total_ok, total_limited, total_other, sample = 0, 0, 0, ""
  for _, thread in ipairs(threads) do
    total_ok = total_ok + thread:get("ok")
    total_limited = total_limited + thread:get("limited")
    total_other = total_other + thread:get("other")
    if thread:get("last_other") ~= "" then sample = thread:get("last_other") end
  end
  io.write(string.format("WRK ok=%d limited=%d other=%d socket_errors=%d p50_ms=%.2f p99_ms=%.2f\n",
    total_ok, total_limited, total_other,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
  if sample ~= "" then io.write("WRK other-sample " .. sample .. "\n") end
end
