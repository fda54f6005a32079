-- GET /ngsi-ld/v1/entities?type=<T>&q=<observed>><0..100>;<static> as Stellio's query scenarios:
--   extra arg (after the run tag) "property":     static = name/description/stationCode equality (random)
--   extra arg "relationship": static = servesDataset=="<one of R targets>"
-- No limit: the default page, as Stellio sends it.
dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/[^/]*$") .. "/common.lua")

local kind = "property"

function on_init(args)
  kind = args[3] or "property"
end

local function pick(list) return list[math.random(1, #list)] end

function request()
  local static
  if kind == "relationship" then
    static = 'servesDataset=="' .. pick(P.relationships) .. '"'
  else
    static = pick(P.static_queries)
  end
  local q = pick(P.observed) .. ">" .. math.random(0, 100) .. ";" .. static
  return wrk.format("GET", P.base .. "/entities?type=" .. urlencode(pick(P.types)) .. "&q=" .. urlencode(q),
                    GET_HEADERS)
end
