-- wrk script: every request carries the next of a file of bearer tokens (one per line), so a run cycles through
-- all of them. Usage: wrk -s bench/rotate_tokens.lua URL -- TOKENS_FILE
-- Each wrk thread starts at its own offset so threads do not present the same token at the same time.
local threads = 0
function setup(thread)
  thread:set("offset", threads * 4999)
  threads = threads + 1
end

local tokens, i = {}, 0
function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then tokens[#tokens + 1] = "Bearer " .. line end
  end
  i = (offset or 0) % #tokens
end

function request()
  i = i % #tokens + 1
  return wrk.format(nil, nil, { ["Authorization"] = tokens[i] })
end
