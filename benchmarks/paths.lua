-- GET a path from BENCH_PATHS_FILE in turn; a line is "path" or "path<TAB>etag", and an
-- etag is sent as If-None-Match (so a fresh one is answered 304).
local paths, etags = {}, {}
local n, i = 0, 0

function init(args)
  for line in io.lines(os.getenv("BENCH_PATHS_FILE")) do
    local path, etag = string.match(line, "^([^\t]+)\t?(.*)$")
    if path then n = n + 1; paths[n] = path; etags[n] = etag end
  end
end

function request()
  i = i % n + 1
  local headers = {}
  if etags[i] ~= "" then headers["If-None-Match"] = etags[i] end
  return wrk.format("GET", paths[i], headers)
end
