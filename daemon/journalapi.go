package daemon

import (
	"net/http"
	"time"

	"github.com/edgefw/edgefw/journal"
)

// serveJournal answers the journal's entries at or after the time of the
// query parameter since (RFC 3339), all of them without it.
func (s *ControlServer) serveJournal(w http.ResponseWriter, r *http.Request) {
	var since time.Time
	if v := r.URL.Query().Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad since: want an RFC 3339 time like 2026-03-01T12:00:00Z: "+err.Error())
			return
		}
		since = t
	}
	entries, err := s.d.JournalEntries(since)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if entries == nil {
		entries = []journal.Entry{}
	}
	writeHTTPJSON(w, http.StatusOK, entries)
}

// serveJournalVerify answers whether the journal's hash chain holds. The
// daemon reads its own state directory, which edgefwctl may not.
func (s *ControlServer) serveJournalVerify(w http.ResponseWriter, r *http.Request) {
	v, err := s.d.VerifyJournal()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeHTTPJSON(w, http.StatusOK, v)
}
