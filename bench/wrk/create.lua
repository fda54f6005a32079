-- POST /ngsi-ld/v1/entities: Stellio's template entity with a unique id per request.
dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/[^/]*$") .. "/common.lua")

local counter = 0

function request()
  counter = counter + 1
  local id = P.create_prefix .. ARGS[2] .. "-" .. tid .. "-" .. counter
  return wrk.format("POST", P.base .. "/entities", JSON_HEADERS, string.format(P.create_tpl, id))
end
