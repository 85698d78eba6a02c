package recording

import (
	"context"
	"time"
)

// SetShipEvery sets how often m ships segments; call it before Run.
func SetShipEvery(m *Manager, d time.Duration) { m.shipEvery = d }

// ShipNow runs one round of shipping, ignoring backoff, and returns when
// it is done.
func ShipNow(m *Manager) { m.shipRound(context.Background(), true) }
