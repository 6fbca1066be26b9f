package app

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// A record (or a ping) begun before the store's first failure
// may return after it; it says nothing of the store since that turn,
// either way, so an outage's start is one unavailable line, not two with
// an "available again" between.
func TestAStoreTurnIsNotUndoneByAnAttemptBegunBeforeIt(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	w := newTransitions(zap.New(core))

	before := time.Now()
	w.storeFailed(time.Now(), "connection refused")
	w.storeWorks(before) // committed just before the outage, and returned after its first failure
	assert.True(t, w.storeFailing(), "a record begun before the failure does not end it")

	after := time.Now()
	w.storeWorks(after)
	w.storeFailed(after, "connection refused") // hung through the outage, and failed after its end
	assert.False(t, w.storeFailing(), "a record begun before the recovery does not undo it")

	w.storeFailed(time.Now(), "connection refused")
	assert.True(t, w.storeFailing(), "a failure begun after the recovery is a new outage")

	assert.Equal(t, 2, logs.FilterMessage("task store unavailable: tasks are refused until it is back").Len())
	assert.Equal(t, 1, logs.FilterMessage("task store available again").Len())
}
