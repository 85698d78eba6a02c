-- 0005: recordings belong to the gateway that writes them.
--
-- Portable. Gateways sharing a database each close, when they start, only
-- the recordings they left active (store.Store.InterruptActive), not those
-- another gateway is still writing. gateway is the recording gateway's id;
-- rows written before this version keep '' and belong to a gateway whose
-- id is ''.
ALTER TABLE recordings ADD COLUMN gateway TEXT NOT NULL DEFAULT '';
-- InterruptActive looks for one gateway's active recordings at start.
CREATE INDEX recordings_gateway_state ON recordings (gateway, state);
