-- wrk script of benches/http.sh: POSTs the 1 KB body of TASKHOOK_BODY (a
-- file) with its task id replaced by a unique 31-byte id per request
-- ("task_" .. 2-digit thread number .. 24-digit counter), or, with
-- TASKHOOK_DUP=1, the fixture's own id every time (the body is rebuilt
-- the same way, so that wrk does the same work in both modes).

local fixture_id = "task_01KE11111111111111111EXTRA"
local dup = os.getenv("TASKHOOK_DUP") == "1"
local threads = 0
local head, tail
local counter = 0

function setup(thread)
   thread:set("tid", threads)
   threads = threads + 1
end

function init(args)
   local f = assert(io.open(os.getenv("TASKHOOK_BODY"), "rb"))
   local body = f:read("*a")
   f:close()
   local s, e = body:find(fixture_id, 1, true)
   head = body:sub(1, s - 1)
   tail = body:sub(e + 1)
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   local id = fixture_id
   counter = counter + 1
   local fresh = string.format("task_%02d%024d", tid, counter)
   if not dup then
      id = fresh
   end
   return wrk.format(nil, nil, nil, head .. id .. tail)
end
