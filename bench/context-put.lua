-- wrk script for bench/context.sh: every request PUTs a new context key (thread id + counter),
-- so the table grows by one row per request.
local threads = {}
local counter = 0

function setup(thread)
    thread:set("id", #threads + 1)
    table.insert(threads, thread)
end

function init(args)
    prefix = "bench-" .. (args[1] or "0") .. "-" .. id .. "-"
    wrk.method = "PUT"
    wrk.headers["Content-Type"] = "application/json"
    wrk.body = '{"value":"the plan is to ship on friday"}'
end

function request()
    counter = counter + 1
    return wrk.format(nil, "/api/v1/context/" .. prefix .. counter)
end
