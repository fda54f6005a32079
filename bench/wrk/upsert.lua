-- POST /ngsi-ld/v1/entityOperations/upsert with P.batch entities (type Entity, random values).
-- Ids come in aligned blocks from a pool of P.upsert_pool ids outside the seeded set, so the first
-- pass over the pool creates and later ones replace, without touching the query scenarios' data.
dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/[^/]*$") .. "/common.lua")

local function r() return math.random() * 100 end

function request()
  local blocks = math.floor(P.upsert_pool / P.batch)
  local start = math.random(0, blocks - 1) * P.batch
  local parts = {}
  for i = 0, P.batch - 1 do
    parts[#parts + 1] = string.format(P.upsert_tpl, P.upsert_prefix .. (start + i), r(), r(), r(), r(), r())
  end
  return wrk.format("POST", P.base .. "/entityOperations/upsert", JSON_HEADERS,
                    "[" .. table.concat(parts, ",") .. "]")
end
