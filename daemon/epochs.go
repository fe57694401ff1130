package daemon

import (
	"maps"
	"os"
	"path/filepath"
	"strconv"

	"github.com/edgefw/edgefw/internal/bootid"
)

// counterEpochsFile keeps the counters' epochs across daemon restarts.
const counterEpochsFile = "counter-epochs.json"

// counterEpochs names each counter's lifetime for the attribution
// (audit.Reading.Epoch): the host's boot, and the serial of the apply that
// last created or reset the counter in that boot. A counter recreated in
// the kernel (its table deleted and restored, or reset because its rule
// now counts something else) gets a new epoch, so its first reading
// counts from zero even when it is already past its old value, and is
// never read as a negative increase. The epochs outlive the daemon, as
// the kernel's counters do, so that a restart does not read a counter it
// knew as a new one and count its whole value again; a reboot, which
// recreates every counter, changes the boot.
type counterEpochs struct {
	Boot string `json:"boot"`
	// Serial is the last serial given.
	Serial uint64 `json:"serial"`
	// Counters holds each counter's serial; a counter without one has
	// lived since before the daemon knew it (serial 0).
	Counters map[string]uint64 `json:"counters"`
}

// loadCounterEpochs reads the epochs the daemon kept in dir during this
// boot; those of another boot, or none, give a fresh start.
func loadCounterEpochs(dir, boot string) (*counterEpochs, error) {
	fresh := &counterEpochs{Boot: boot, Counters: map[string]uint64{}}
	var e counterEpochs
	ok, err := readFileJSON(filepath.Join(dir, counterEpochsFile), &e)
	if !ok || err != nil || e.Boot != boot {
		return fresh, err
	}
	if e.Counters == nil {
		e.Counters = map[string]uint64{}
	}
	return &e, nil
}

func (e *counterEpochs) save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return writeFileJSON(filepath.Join(dir, counterEpochsFile), e)
}

// epoch names the counter's current lifetime.
func (e *counterEpochs) epoch(counter string) string {
	return e.Boot + "/" + strconv.FormatUint(e.Counters[counter], 10)
}

// zero gives the counters, just created or reset, a new lifetime.
func (e *counterEpochs) zero(counters []string) {
	if len(counters) == 0 {
		return
	}
	e.Serial++
	for _, name := range counters {
		e.Counters[name] = e.Serial
	}
}

// retain forgets the counters the kernel no longer holds (a counter
// added again is zeroed again) and reports whether any went.
func (e *counterEpochs) retain(present func(string) bool) bool {
	n := len(e.Counters)
	maps.DeleteFunc(e.Counters, func(name string, _ uint64) bool { return !present(name) })
	return len(e.Counters) != n
}

// readBootID returns the current boot's ID, or "" when Linux does not
// say: then only a counter lower than its last reading tells a reboot.
func readBootID() string {
	id, err := bootid.Read()
	if err != nil {
		return ""
	}
	return id
}
