package daemon

import (
	"context"
	"testing"
)

// TestStatusDuringStart asks for status while Start runs, as edgefwctl
// may: the control socket listens before the first apply. Under -race
// (make test), a field Start writes without the lock fails it.
func TestStatusDuringStart(t *testing.T) {
	h := newHarness(t)
	d := h.daemon(t)
	started := make(chan error, 1)
	go func() { started <- d.Start(context.Background()) }()
	for {
		st := d.Status(context.Background())
		if st.Version != "test" {
			t.Fatalf("status version %q", st.Version)
		}
		select {
		case err := <-started:
			if err != nil {
				t.Fatal(err)
			}
			if st := d.Status(context.Background()); st.StartedAt.IsZero() {
				t.Fatal("status after Start has no start time")
			}
			return
		default:
		}
	}
}
