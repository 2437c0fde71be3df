-- early_stop.lua: patience-based early stopping. Ends training cleanly (checkpoint, test
-- evaluation and on_end still run) when the monitored metric has not improved for `patience`
-- epochs in a row.
--
--   hooks:
--     - {file: early_stop.lua, args: {patience: 5, min_delta: 0.001, monitor: val_loss}}
--
-- args (all optional):
--   patience   integer >= 1, default 5: epochs without improvement before stopping
--   min_delta  number >= 0, default 0: an improvement must beat the best value by more than this
--   monitor    val_loss (default), val_acc, train_loss or train_acc: a column of metrics.jsonl
--   mode       min or max, default min for *_loss and max for *_acc
-- When it triggers, on_epoch_end returns
--   {stop = "val_loss did not improve by more than 0.001 for 5 epochs (best 0.5123 at epoch 7)"}
-- Monitoring val_* in a run without a validation split (data.val_split: 0) is an error, raised
-- at on_start and at every epoch, that says so. The state (best value, its epoch, epochs since)
-- lives in the global `early_stop_state` for the run's lifetime; a run resumed from a checkpoint
-- starts with a fresh state and replays the history it is given, so it stops where the
-- uninterrupted run would have.
-- Covered by tests/test_lua_hooks.lua (histories whose metric stops improving must stop at the best
-- epoch + patience; bad args; no validation split; a resumed run).

local MONITORS = {val_loss = "min", val_acc = "max", train_loss = "min", train_acc = "max"}
local SETTINGS = {patience = true, min_delta = true, monitor = true, mode = true}

--------------------------------------------------------------------------------------------------
-- Settings

local function names(t)
  local list = {}
  for k in pairs(t) do list[#list + 1] = k end
  table.sort(list)
  return table.concat(list, ", ")
end

local function show(v)
  return type(v) == "string" and string.format("%q", v) or tostring(v)
end

-- settings(args): the checked settings, or an error naming the offending arg.
local function settings(args)
  args = args or {}
  for k in pairs(args) do
    if not SETTINGS[k] then
      error(string.format("unknown arg '%s' (known: %s)", tostring(k),
        names(SETTINGS)), 0)
    end
  end
  local s = {patience = 5, min_delta = 0.0, monitor = "val_loss"}
  if args.patience ~= nil then
    local p = args.patience
    if math.type(p) == "float" and p == math.floor(p) then p = math.tointeger(p) end
    if math.type(p) ~= "integer" or p < 1 then
      error("args.patience must be an integer >= 1, got " .. show(args.patience), 0)
    end
    s.patience = p
  end
  if args.min_delta ~= nil then
    local d = args.min_delta
    if type(d) ~= "number" or d ~= d or d < 0 or d == math.huge then
      error("args.min_delta must be a number >= 0, got " .. show(d), 0)
    end
    s.min_delta = d
  end
  if args.monitor ~= nil then
    if not MONITORS[args.monitor] then
      error(string.format("args.monitor must be one of %s, got %s",
        names(MONITORS), show(args.monitor)), 0)
    end
    s.monitor = args.monitor
  end
  s.mode = MONITORS[s.monitor]
  if args.mode ~= nil then
    if args.mode ~= "min" and args.mode ~= "max" then
      error("args.mode must be min or max, got " .. show(args.mode), 0)
    end
    s.mode = args.mode
  end
  return s
end

-- no_validation(run): true when the configuration says there is no validation split.
local function no_validation(run)
  local data = type(run.config) == "table" and run.config.data or nil
  return type(data) == "table" and data.val_split == 0
end

local function missing_monitor(s, epoch, run)
  local where = epoch and string.format(" from epoch %d's metrics", epoch) or ""
  if s.monitor:sub(1, 4) == "val_" then
    error(string.format("cannot monitor %s: it is missing%s because this run "
      .. "has no validation split%s; set data.val_split, or monitor train_loss", s.monitor,
      where, no_validation(run) and " (data.val_split: 0)" or ""), 0)
  end
  error(string.format("cannot monitor %s: it is missing%s", s.monitor, where), 0)
end

--------------------------------------------------------------------------------------------------
-- State

local function fresh_state(s)
  return {settings = s, best = nil, best_epoch = nil, bad = 0, last_epoch = 0}
end

local function same_settings(a, b)
  return a.patience == b.patience and a.min_delta == b.min_delta and a.monitor == b.monitor
    and a.mode == b.mode
end

-- observe(state, row): updates the state with one epoch's metrics.
local function observe(state, row)
  local s = state.settings
  local v = row[s.monitor]
  state.last_epoch = row.epoch
  if v == nil then return end
  if v ~= v then
    state.bad = state.bad + 1
    return
  end
  local improved
  if state.best == nil then
    improved = true
  elseif s.mode == "min" then
    improved = v < state.best - s.min_delta
  else
    improved = v > state.best + s.min_delta
  end
  if improved then
    state.best, state.best_epoch, state.bad = v, row.epoch, 0
  else
    state.bad = state.bad + 1
  end
end

local function reason(state)
  local s = state.settings
  local by = s.min_delta > 0 and string.format(" by more than %g", s.min_delta) or ""
  local best = state.best and string.format("best %.4f at epoch %d", state.best, state.best_epoch)
    or "no finite value yet"
  return string.format("%s did not improve%s for %d epoch%s (%s)", s.monitor, by, state.bad,
    state.bad == 1 and "" or "s", best)
end

--------------------------------------------------------------------------------------------------
-- Hook functions

function on_start(run)
  local s = settings(run.args)
  early_stop_state = fresh_state(s)
  runner.log(string.format("early_stop: monitoring %s (%s), patience %d, min_delta %g", s.monitor,
    s.mode, s.patience, s.min_delta))
  if s.monitor:sub(1, 4) == "val_" and no_validation(run) then
    missing_monitor(s, nil, run)
  end
end

function on_epoch_end(run, epoch)
  local s = settings(run.args)
  local state = early_stop_state
  if state == nil or not same_settings(state.settings, s) then
    state = fresh_state(s)
    early_stop_state = state
  end
  epoch = epoch or (run.history or {})[#(run.history or {})]
  if epoch == nil then return end
  if epoch[s.monitor] == nil then missing_monitor(s, epoch.epoch, run) end
  for _, row in ipairs(run.history or {}) do
    if row.epoch < epoch.epoch and row.epoch > state.last_epoch then observe(state, row) end
  end
  if epoch.epoch > state.last_epoch then observe(state, epoch) end
  if state.bad >= s.patience then
    return {stop = reason(state)}
  end
end
