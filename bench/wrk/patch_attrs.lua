-- PATCH /ngsi-ld/v1/entities/{id}/attrs with Stellio's update fragment (ammonium x2,
-- waterTemperature x2, dissolvedOxygen), random values, on a random seeded entity.
dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/[^/]*$") .. "/common.lua")

local function r() return math.random() * 100 end

function request()
  local body = string.format(P.fragment_tpl, r(), r(), r(), r(), r())
  return wrk.format("PATCH", P.base .. "/entities/" .. random_id() .. "/attrs", JSON_HEADERS, body)
end
