-- PATCH /ngsi-ld/v1/entities/{id}/attrs/dissolvedOxygen {value, observedAt} on a random seeded
-- entity (Stellio's partial-attribute-update-entities.js).
dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/[^/]*$") .. "/common.lua")

function request()
  local body = string.format('{"value": %.3f, "observedAt": "%s"}', math.random() * 100,
                             os.date("!%Y-%m-%dT%H:%M:%SZ"))
  return wrk.format("PATCH", P.base .. "/entities/" .. random_id() .. "/attrs/dissolvedOxygen",
                    JSON_HEADERS, body)
end
