-- Argo CD health check for stratops.dev/Strategy.
--
-- Install: add this script under resource.customizations.health.stratops.dev_Strategy
-- in the argocd-cm ConfigMap (see the README). Argo CD runs it with
-- gopher-lua, obj being the Strategy; it returns {status, message}.
--
-- Healthy: the strategy runs as declared (Ready), or its backtest succeeded.
-- Progressing: the operator has not yet observed the spec, is rolling it
--   out, or holds a Live strategy at its Redis gate (Gated).
-- Degraded: a Live engine halted or running without Redis, a failed
--   backtest, or Stalled (no retry helps until the spec or a Secret changes).
-- Suspended: spec.suspend, or a Live update held for approval (UpdatePending).
local hs = {status = "Progressing", message = "Waiting for the operator to report status"}

local function condition(t)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == t then
      return c
    end
  end
  return nil
end

local function say(status, message)
  hs.status = status
  hs.message = message or ""
  return hs
end

if obj.status == nil then
  return hs
end
local status = obj.status
local phase = status.phase or ""
local ready = condition("Ready")
local readyMsg = ""
if ready ~= nil and ready.message ~= nil then
  readyMsg = ready.message
end

if obj.spec ~= nil and obj.spec.suspend == true then
  return say("Suspended", "Reconciling is suspended (spec.suspend)")
end
if status.observedGeneration == nil or obj.metadata.generation == nil or status.observedGeneration < obj.metadata.generation then
  return say("Progressing", "Waiting for the operator to observe generation " .. tostring(obj.metadata.generation))
end

local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  return say("Degraded", (stalled.reason or "Stalled") .. ": " .. (stalled.message or ""))
end

if phase == "Succeeded" then
  return say("Healthy", "The backtest succeeded")
end
if phase == "Failed" then
  return say("Degraded", readyMsg)
end
if phase == "Halted" then
  return say("Degraded", "Engine halted: " .. readyMsg)
end
if phase == "Degraded" then
  return say("Degraded", readyMsg)
end
if phase == "Suspended" then
  return say("Suspended", readyMsg)
end

local pending = condition("UpdatePending")
if pending ~= nil and pending.status == "True" then
  return say("Suspended", "Update held: " .. (pending.message or ""))
end

if ready ~= nil and ready.status == "True" then
  local reconciling = condition("Reconciling")
  if reconciling ~= nil and reconciling.status == "True" then
    return say("Progressing", reconciling.message)
  end
  return say("Healthy", readyMsg)
end

if phase == "Gated" then
  return say("Progressing", "Gated until Redis passes its probes: " .. readyMsg)
end
return say("Progressing", readyMsg)
