-- GET /ngsi-ld/v1/entities/{id} of a random seeded entity.
dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/[^/]*$") .. "/common.lua")

function request()
  return wrk.format("GET", P.base .. "/entities/" .. random_id(), GET_HEADERS)
end
