package sessiongate

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/session-gate/session_gate/refresh"
)

func init() {
	caddy.RegisterModule(adminSessions{})
}

// adminSessions is the admin API module admin.api.session_gate: it lists and
// revokes the sessions of the running config's refreshers
// (docs/behaviour.md, "Sessions for operators").
//
//	GET    /session-gate/sessions?sub=<user>   200, the user's live sessions
//	DELETE /session-gate/sessions/<sid>        204, or 404 when no live session has it
//	DELETE /session-gate/sessions?sub=<user>   200 {"revoked":N}
//
// Its JSON, errors included, is not HTML-escaped: a user named <user> reads
// as such. It finds the refreshers through what Provision registered, never by
// opening a store itself: a bolt file is held by the running Caddy.
type adminSessions struct{}

// CaddyModule returns the Caddy module information.
func (adminSessions) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.session_gate",
		New: func() caddy.Module { return new(adminSessions) },
	}
}

const adminSessionsPath = "/session-gate/sessions"

// Routes returns the routes of /session-gate/sessions.
func (a adminSessions) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: adminSessionsPath, Handler: plainErrors(a.serveSubject)},
		{Pattern: adminSessionsPath + "/", Handler: plainErrors(a.serveSession)},
	}
}

// unknownDevice is what a person or an operator is shown for a session
// whose device is not known.
const unknownDevice = "Unknown device"

// sessionJSON is one session as the admin API shows it. Refreshed is null
// before the first refresh; LastSeen is the last refresh or, before one,
// the start. Device is "" when unknown (a session started before devices
// were recorded, or a client whose User-Agent names nothing known).
type sessionJSON struct {
	SID       string     `json:"sid"`
	Sub       string     `json:"sub"`
	Device    string     `json:"device"`
	Created   time.Time  `json:"created"`
	LastSeen  time.Time  `json:"last_seen"`
	Refreshed *time.Time `json:"refreshed"`
	Expires   time.Time  `json:"expires"`
}

func toSessionJSON(s refresh.Session) sessionJSON {
	j := sessionJSON{
		SID: s.ID, Sub: s.Subject, Device: s.Device,
		Created: s.Created.UTC(), LastSeen: s.LastSeen().UTC(), Expires: s.Expires.UTC(),
	}
	if !s.RotatedAt.IsZero() {
		r := s.RotatedAt.UTC()
		j.Refreshed = &r
	}
	return j
}

// serveSubject answers /session-gate/sessions?sub=<user>: GET lists the
// user's sessions, DELETE revokes them all.
func (adminSessions) serveSubject(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodDelete {
		w.Header().Set("Allow", "GET, DELETE")
		return apiError(http.StatusMethodNotAllowed, "method not allowed: use GET to list a user's sessions, DELETE to revoke them")
	}
	sub := r.URL.Query().Get("sub")
	if sub == "" {
		return apiError(http.StatusBadRequest, "missing ?sub=<user>: name the user whose sessions to "+map[string]string{http.MethodGet: "list", http.MethodDelete: "revoke"}[r.Method])
	}
	stores, err := operatedStores()
	if err != nil {
		return err
	}
	if r.Method == http.MethodGet {
		list := []sessionJSON{}
		seen := map[string]bool{}
		for _, rf := range stores {
			sessions, err := rf.sessions(r.Context(), sub)
			if err != nil {
				return storeError(err)
			}
			for _, s := range sessions {
				if !seen[s.ID] {
					seen[s.ID] = true
					list = append(list, toSessionJSON(s))
				}
			}
		}
		slices.SortFunc(list, func(a, b sessionJSON) int { return a.Created.Compare(b.Created) })
		return writeAdminJSON(w, http.StatusOK, list)
	}
	total := 0
	for _, rf := range stores {
		n, err := rf.revokeSubject(r.Context(), sub)
		if err != nil {
			return storeError(err)
		}
		total += n
	}
	return writeAdminJSON(w, http.StatusOK, map[string]int{"revoked": total})
}

// serveSession answers DELETE /session-gate/sessions/<sid>.
func (adminSessions) serveSession(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodDelete {
		w.Header().Set("Allow", "DELETE")
		return apiError(http.StatusMethodNotAllowed, "method not allowed: use DELETE to revoke a session (GET "+adminSessionsPath+"?sub=<user> lists them)")
	}
	sid := strings.TrimPrefix(r.URL.Path, adminSessionsPath+"/")
	if sid == "" || strings.Contains(sid, "/") {
		return apiError(http.StatusNotFound, "name one session: DELETE "+adminSessionsPath+"/<sid>")
	}
	stores, err := operatedStores()
	if err != nil {
		return err
	}
	found := false
	for _, rf := range stores {
		ok, err := rf.revokeSession(r.Context(), sid)
		if err != nil {
			return storeError(err)
		}
		found = found || ok
	}
	if !found {
		return apiError(http.StatusNotFound, fmt.Sprintf("no live session %q: unknown, expired or already revoked", sid))
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func writeAdminJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// plainErrors writes the handler's caddy.APIError as Caddy's admin endpoint
// would ({"error":"…"} with its status, logged as a request error), but
// without HTML escaping, which Caddy's own encoder applies.
func plainErrors(h caddy.AdminHandlerFunc) caddy.AdminHandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		err := h(w, r)
		var apiErr caddy.APIError
		if !errors.As(err, &apiErr) || apiErr.Err == nil {
			return err
		}
		caddy.Log().Named("admin.api").Error("request error", zap.Error(err), zap.Int("status_code", apiErr.HTTPStatus))
		return writeAdminJSON(w, apiErr.HTTPStatus, map[string]string{"error": apiErr.Err.Error()})
	}
}

func apiError(status int, msg string) error {
	return caddy.APIError{HTTPStatus: status, Err: errors.New(msg)}
}

func storeError(err error) error {
	status := http.StatusInternalServerError
	if errors.Is(err, refresh.ErrStoreUnavailable) {
		status = http.StatusServiceUnavailable
	}
	return caddy.APIError{HTTPStatus: status, Err: fmt.Errorf("session_gate: %w", err)}
}

// operated holds the refreshers of the configs Caddy runs, registered by
// Provision and removed by Cleanup. During a reload the old and the new
// config are both here; they share their stores (same key), so each store
// is still asked once.
var operated = struct {
	sync.Mutex
	m map[*refresher]struct{}
}{m: map[*refresher]struct{}{}}

func registerOperated(rf *refresher) {
	operated.Lock()
	defer operated.Unlock()
	operated.m[rf] = struct{}{}
}

func unregisterOperated(rf *refresher) {
	operated.Lock()
	defer operated.Unlock()
	delete(operated.m, rf)
}

// operatedStores returns one refresher per distinct store, so that a store
// shared by several gates (or by the old and new config during a reload)
// is asked once. With none, the answer is a 404 that says why.
func operatedStores() ([]*refresher, error) {
	operated.Lock()
	defer operated.Unlock()
	byStore := map[string]*refresher{}
	for rf := range operated.m {
		if _, ok := byStore[rf.storeKey]; !ok {
			byStore[rf.storeKey] = rf
		}
	}
	if len(byStore) == 0 {
		return nil, apiError(http.StatusNotFound, "no session_gate with a refresher in the running config: sessions exist only with a refresher")
	}
	keys := slices.Sorted(maps.Keys(byStore))
	out := make([]*refresher, 0, len(keys))
	for _, k := range keys {
		out = append(out, byStore[k])
	}
	return out, nil
}

// Interface guards
var (
	_ caddy.AdminRouter = adminSessions{}
)
