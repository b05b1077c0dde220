package refresh

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

const (
	// boltLockTimeout bounds the wait for the file lock: another process
	// holding the file must make Open fail, not hang Caddy's start.
	boltLockTimeout = time.Second
	// boltSweepEvery is how often expired sessions are deleted.
	boltSweepEvery = 10 * time.Minute
	// boltSweepBatch bounds one sweep transaction, so a large backlog never
	// holds the writer lock (and so refreshes) for long.
	boltSweepBatch = 1000
)

var (
	boltSessions = []byte("sessions") // id → encoded Session
	boltExpiry   = []byte("expiry")   // expires (8 bytes, big endian ns) || id → nothing
	// boltSubjects indexes sessions by user: subject || 0 || id → nothing.
	// A subject may itself hold a 0 byte, so a prefix match is confirmed
	// against the record's subject. Kept in the transactions that create
	// and sweep sessions; revoked sessions stay until they expire.
	boltSubjects = []byte("subjects")
	// boltRevoked remembers recent revocations for WatchRevocations'
	// replay: revoked at (8 bytes, big endian ns) || id → nothing. Written in
	// the transaction that revokes, swept after RevocationReplay.
	boltRevoked = []byte("revoked")
)

// BoltStore keeps sessions in a bbolt file, so they survive restarts. bbolt
// locks the file: one BoltStore per file at a time, in this process or any
// other (the gates that share one file share one BoltStore, through the
// module's store pool). Expired sessions are deleted every 10 minutes and
// when the file is opened.
type BoltStore struct {
	db     *bolt.DB
	logger *zap.Logger
	closed atomic.Bool
	stop   chan struct{} // closed by Close: the sweeper stops
	done   chan struct{} // closed when the sweeper has stopped
	feed   localFeed     // revocations made through this store, told to its watchers
	writes boltGroup     // sessions' writes, committed in groups
}

// OpenBoltStore opens (creating it and its directory when needed) the bbolt
// file at path. It fails after 1 s when the file is locked (another process,
// or another BoltStore of this one, has it open). A nil logger logs nothing.
func OpenBoltStore(path string, logger *zap.Logger) (*BoltStore, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("bolt store %q: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("bolt store %q: %w", path, err)
	}
	db, err := bolt.Open(abs, 0o600, &bolt.Options{Timeout: boltLockTimeout})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("bolt store %q: file is locked by another process (after %s)", path, boltLockTimeout)
		}
		return nil, fmt.Errorf("bolt store %q: %w", path, err)
	}
	if err := db.Update(createBoltBuckets); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("bolt store %q: %w", path, err)
	}
	b := &BoltStore{
		db:     db,
		logger: logger.With(zap.String("bolt_file", abs)),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go b.sweepLoop()
	return b, nil
}

// createBoltBuckets makes the buckets a new file lacks. A file written
// before the subject index existed gets it built from its sessions here, so
// that every session, old ones included, can be listed and revoked.
func createBoltBuckets(tx *bolt.Tx) error {
	for _, name := range [][]byte{boltSessions, boltExpiry, boltRevoked} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	if tx.Bucket(boltSubjects) != nil {
		return nil
	}
	idx, err := tx.CreateBucket(boltSubjects)
	if err != nil {
		return err
	}
	return tx.Bucket(boltSessions).ForEach(func(k, v []byte) error {
		sub, err := boltRecordSubject(v)
		if err != nil {
			return nil // unreadable: Rotate treats it as unknown, the sweep deletes it
		}
		return idx.Put(boltSubjectKey(sub, string(k)), nil)
	})
}

func (b *BoltStore) sweepLoop() {
	defer close(b.done)
	t := time.NewTicker(boltSweepEvery)
	defer t.Stop()
	for {
		n, err := sweepBolt(b.db, time.Now())
		if err != nil {
			b.logger.Warn("sweeping expired sessions failed", zap.Error(err))
		} else if n > 0 {
			b.logger.Debug("swept expired sessions", zap.Int("count", n))
		}
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
	}
}

// Close stops the sweeper, ends the watches and closes the file. Closing
// twice is harmless.
func (b *BoltStore) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	close(b.stop)
	<-b.done
	b.feed.close()
	return b.db.Close()
}

// open returns the database unless the store is closed.
func (b *BoltStore) open() (*bolt.DB, error) {
	if b.closed.Load() {
		return nil, errStoreClosed
	}
	return b.db, nil
}

// Create implements Store.
func (b *BoltStore) Create(_ context.Context, s *Session) error {
	db, err := b.open()
	if err != nil {
		return storeUnavailable("create", err)
	}
	v, err := encodeBoltSession(s)
	if err != nil {
		return err // claims that do not marshal: the caller's mistake, not an outage
	}
	return storeUnavailable("create", b.writes.update(db, func(tx *bolt.Tx) error {
		if err := tx.Bucket(boltSessions).Put([]byte(s.ID), v); err != nil {
			return err
		}
		if err := tx.Bucket(boltSubjects).Put(boltSubjectKey(s.Subject, s.ID), nil); err != nil {
			return err
		}
		return tx.Bucket(boltExpiry).Put(boltExpiryKey(s.Expires, s.ID), nil)
	}))
}

// Rotate implements Store. It first decides in a read-only transaction,
// which needs no fsync: only when the decision writes does it join a write
// transaction (shared with other writes: boltGroup) and decide again there,
// and that second decision is the one that counts. Concurrent presentations
// of one token thus cost a single write (the rotation); the others are
// answered from a snapshot, or see the rotation in the shared transaction.
func (b *BoltStore) Rotate(_ context.Context, r RotateRequest) (Session, Outcome, error) {
	db, err := b.open()
	if err != nil {
		return Session{}, Unknown, storeUnavailable("rotate", err)
	}
	var (
		out   Session
		o     Outcome
		write bool
	)
	decide := func(tx *bolt.Tx) error {
		v := tx.Bucket(boltSessions).Get([]byte(r.ID))
		if v == nil {
			out, o, write = Session{}, Unknown, false
			return nil
		}
		s, err := decodeBoltSession(r.ID, v)
		if err != nil {
			// Unknown rather than an error: a 503 would stick to this user
			// until the record expired, while Unknown sends them to log in.
			b.logger.Error("unreadable session record; treating it as unknown", zap.String("session_id", r.ID), zap.Error(err))
			out, o, write = Session{}, Unknown, false
			return nil
		}
		out, o, write = decideRotation(s, r)
		if !write || !tx.Writable() {
			return nil
		}
		nv, err := encodeBoltSession(&out)
		if err != nil {
			return err
		}
		if err := tx.Bucket(boltSessions).Put([]byte(r.ID), nv); err != nil {
			return err
		}
		if o == Reused {
			if err := tx.Bucket(boltRevoked).Put(boltExpiryKey(r.Now, r.ID), nil); err != nil {
				return err
			}
		}
		if !out.Expires.Equal(s.Expires) {
			ex := tx.Bucket(boltExpiry)
			if err := ex.Delete(boltExpiryKey(s.Expires, r.ID)); err != nil {
				return err
			}
			return ex.Put(boltExpiryKey(out.Expires, r.ID), nil)
		}
		return nil
	}
	if err := db.View(decide); err != nil {
		return Session{}, Unknown, storeUnavailable("rotate", err)
	}
	if !write {
		return out, o, nil
	}
	if err := b.writes.update(db, decide); err != nil {
		return Session{}, Unknown, storeUnavailable("rotate", err)
	}
	if o == Reused {
		b.feed.publish([]revocation{{r.ID, r.Now}})
	}
	return out, o, nil
}

// get returns a stored session as it is, revoked or expired ones included;
// ok is false when there is none. Only tests read a session back.
func (b *BoltStore) get(_ context.Context, id string) (Session, bool, error) {
	db, err := b.open()
	if err != nil {
		return Session{}, false, storeUnavailable("get", err)
	}
	var (
		s  Session
		ok bool
	)
	err = db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(boltSessions).Get([]byte(id))
		if v == nil {
			return nil
		}
		var err error
		if s, err = decodeBoltSession(id, v); err != nil {
			b.logger.Error("unreadable session record", zap.String("session_id", id), zap.Error(err))
			return nil
		}
		ok = true
		return nil
	})
	if err != nil {
		return Session{}, false, storeUnavailable("get", err)
	}
	return s, ok, nil
}

// RevokeSession implements Store. The revocation is told to watchers as
// made now by the wall clock: no clock is handed in, and the time only
// bounds how long watchers remember it.
func (b *BoltStore) RevokeSession(_ context.Context, id string) (bool, error) {
	db, err := b.open()
	if err != nil {
		return false, storeUnavailable("revoke", err)
	}
	var (
		found bool
		revs  []revocation
	)
	err = b.writes.update(db, func(tx *bolt.Tx) error {
		found, revs = false, nil
		bk := tx.Bucket(boltSessions)
		v := bk.Get([]byte(id))
		if v == nil {
			return nil
		}
		s, err := decodeBoltSession(id, v)
		found = err != nil || !s.Revoked
		if err != nil {
			// Unreadable: revoking means it must never work. Its index entry
			// goes too when the subject can still be read; its expiry entry
			// stays for the sweep, which finds nothing left to delete.
			if sub, err := boltRecordSubject(v); err == nil {
				if err := tx.Bucket(boltSubjects).Delete(boltSubjectKey(sub, id)); err != nil {
					return err
				}
			}
			return bk.Delete([]byte(id))
		}
		if s.Revoked {
			return nil
		}
		r := revocation{id, time.Now()}
		if err := revokeBolt(tx, &s, r); err != nil {
			return err
		}
		revs = []revocation{r}
		return nil
	})
	if err != nil {
		return false, storeUnavailable("revoke", err)
	}
	b.feed.publish(revs)
	return found, nil
}

// revokeBolt saves s revoked and remembers the revocation for replay.
func revokeBolt(tx *bolt.Tx, s *Session, r revocation) error {
	s.Revoked = true
	nv, err := encodeBoltSession(s)
	if err != nil {
		return err
	}
	if err := tx.Bucket(boltSessions).Put([]byte(s.ID), nv); err != nil {
		return err
	}
	return tx.Bucket(boltRevoked).Put(boltExpiryKey(r.at, r.id), nil)
}

// Sessions implements Store.
func (b *BoltStore) Sessions(_ context.Context, subject string, now time.Time) ([]Session, error) {
	db, err := b.open()
	if err != nil {
		return nil, storeUnavailable("sessions", err)
	}
	var out []Session
	err = db.View(func(tx *bolt.Tx) error {
		out = nil
		return b.eachOfSubject(tx, subject, func(s Session) error {
			if s.live(now) {
				out = append(out, s)
			}
			return nil
		})
	})
	if err != nil {
		return nil, storeUnavailable("sessions", err)
	}
	sortSessions(out)
	return out, nil
}

// RevokeSubject implements Store, in one transaction.
func (b *BoltStore) RevokeSubject(_ context.Context, subject string, now time.Time) (int, error) {
	db, err := b.open()
	if err != nil {
		return 0, storeUnavailable("revoke subject", err)
	}
	var (
		n    int
		revs []revocation
	)
	err = b.writes.update(db, func(tx *bolt.Tx) error {
		n, revs = 0, nil
		var revoke []Session
		err := b.eachOfSubject(tx, subject, func(s Session) error {
			if s.live(now) {
				n++
			}
			if !s.Revoked {
				revoke = append(revoke, s)
			}
			return nil
		})
		if err != nil {
			return err
		}
		// Written after the walk: a bbolt cursor must not see its bucket change.
		for i := range revoke {
			r := revocation{revoke[i].ID, now}
			if err := revokeBolt(tx, &revoke[i], r); err != nil {
				return err
			}
			revs = append(revs, r)
		}
		return nil
	})
	if err != nil {
		return 0, storeUnavailable("revoke subject", err)
	}
	b.feed.publish(revs)
	return n, nil
}

// eachOfSubject calls fn with every readable stored session of subject,
// revoked and expired ones included.
func (b *BoltStore) eachOfSubject(tx *bolt.Tx, subject string, fn func(Session) error) error {
	prefix := boltSubjectKey(subject, "")
	ss := tx.Bucket(boltSessions)
	c := tx.Bucket(boltSubjects).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		id := string(k[len(prefix):])
		v := ss.Get([]byte(id))
		if v == nil {
			continue
		}
		s, err := decodeBoltSession(id, v)
		if err != nil {
			b.logger.Error("unreadable session record", zap.String("session_id", id), zap.Error(err))
			continue
		}
		if s.Subject != subject { // a longer subject that holds a 0 byte
			continue
		}
		if err := fn(s); err != nil {
			return err
		}
	}
	return nil
}

// WatchRevocations implements RevocationFeed: revocations made through any
// handle on this file, in this process, replayed from the file first (so
// they survive a restart).
func (b *BoltStore) WatchRevocations(ctx context.Context, fn func(sid string, at time.Time), ready func(error)) {
	b.feed.watch(ctx, fn, b.recentRevocations, ready)
}

// recentRevocations reads from the file what a new watcher is told first.
func (b *BoltStore) recentRevocations() ([]revocation, error) {
	db, err := b.open()
	if err != nil {
		return nil, err
	}
	var replay []revocation
	from := boltExpiryKey(time.Now().Add(-RevocationReplay), "")
	err = db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(boltRevoked).Cursor()
		for k, _ := c.Seek(from); k != nil; k, _ = c.Next() {
			if len(k) >= 8 {
				replay = append(replay, revocation{string(k[8:]), fromBoltTime(binary.BigEndian.Uint64(k[:8]))})
			}
		}
		return nil
	})
	return replay, err
}

// sweep deletes sessions that expired before now and returns how many. The
// store runs it by itself every 10 minutes.
func (b *BoltStore) sweep(now time.Time) (int, error) {
	db, err := b.open()
	if err != nil {
		return 0, storeUnavailable("sweep", err)
	}
	n, err := sweepBolt(db, now)
	return n, storeUnavailable("sweep", err)
}

// sweepBolt walks the expiry index from the oldest entry, so its cost
// follows the number of expired sessions, not of all sessions.
func sweepBolt(db *bolt.DB, now time.Time) (int, error) {
	limit := boltTime(now)
	total := 0
	for {
		n := 0
		err := db.Update(func(tx *bolt.Tx) error {
			ex, ss := tx.Bucket(boltExpiry), tx.Bucket(boltSessions)
			var dead [][]byte
			c := ex.Cursor()
			for k, _ := c.First(); k != nil && len(dead) < boltSweepBatch; k, _ = c.Next() {
				if len(k) < 8 || binary.BigEndian.Uint64(k[:8]) > limit {
					break
				}
				dead = append(dead, bytes.Clone(k))
			}
			// Deleting after the walk: a bbolt cursor may skip an entry when
			// the one under it is deleted.
			idx := tx.Bucket(boltSubjects)
			for _, k := range dead {
				if err := ex.Delete(k); err != nil {
					return err
				}
				if v := ss.Get(k[8:]); v != nil {
					if sub, err := boltRecordSubject(v); err == nil {
						if err := idx.Delete(boltSubjectKey(sub, string(k[8:]))); err != nil {
							return err
						}
					}
				}
				if err := ss.Delete(k[8:]); err != nil {
					return err
				}
			}
			n = len(dead)
			if n < boltSweepBatch {
				return sweepBoltRevoked(tx, now)
			}
			return nil
		})
		total += n
		if err != nil || n < boltSweepBatch {
			return total, err
		}
	}
}

// sweepBoltRevoked forgets revocations older than RevocationReplay.
func sweepBoltRevoked(tx *bolt.Tx, now time.Time) error {
	limit := boltTime(now.Add(-RevocationReplay))
	rv := tx.Bucket(boltRevoked)
	var old [][]byte
	c := rv.Cursor()
	for k, _ := c.First(); k != nil && len(old) < boltSweepBatch; k, _ = c.Next() {
		if len(k) >= 8 && binary.BigEndian.Uint64(k[:8]) >= limit {
			break
		}
		old = append(old, bytes.Clone(k))
	}
	for _, k := range old {
		if err := rv.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// boltSubjectKey is subject || 0 || id, the key of the subject index; with
// id "" it is the prefix of all of subject's keys.
func boltSubjectKey(subject, id string) []byte {
	k := make([]byte, 0, len(subject)+1+len(id))
	k = append(k, subject...)
	k = append(k, 0)
	return append(k, id...)
}

func boltExpiryKey(t time.Time, id string) []byte {
	k := make([]byte, 8, 8+len(id))
	binary.BigEndian.PutUint64(k, boltTime(t))
	return append(k, id...)
}

// boltTime is t in Unix nanoseconds, 0 for the zero time (whose UnixNano is
// not defined) and for anything before 1970.
func boltTime(t time.Time) uint64 {
	if t.IsZero() || t.Before(time.Unix(0, 0)) {
		return 0
	}
	return uint64(t.UnixNano())
}

func fromBoltTime(n uint64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(n))
}

// The record layout, version 2. A binary layout rather than JSON because
// every rotation decodes and encodes one, inside the writer lock.
//
//	0      version (2; 1 in files written before devices were recorded)
//	1:9    generation
//	9:17   created   (Unix ns)
//	17:25  expires   (Unix ns)
//	25:33  rotatedAt (Unix ns, 0 when never)
//	33     flags (bit 0: revoked)
//	34:66  current hash
//	66:98  previous hash
//	98:    uvarint len(subject), subject, then (version 2 only) uvarint
//	       len(device), device, then the claims as JSON (may be empty)
//
// Version 1 records are read as sessions without a device; a rotation or a
// revocation writes them again as version 2.
const (
	boltVersion1   = 1
	boltVersion    = 2
	boltHeaderSize = 98
)

func encodeBoltSession(s *Session) ([]byte, error) {
	var claims []byte
	if len(s.Claims) > 0 {
		var err error
		if claims, err = json.Marshal(s.Claims); err != nil {
			return nil, fmt.Errorf("session claims: %w", err)
		}
	}
	v := make([]byte, boltHeaderSize, boltHeaderSize+2*binary.MaxVarintLen64+len(s.Subject)+len(s.Device)+len(claims))
	v[0] = boltVersion
	binary.BigEndian.PutUint64(v[1:], s.Generation)
	binary.BigEndian.PutUint64(v[9:], boltTime(s.Created))
	binary.BigEndian.PutUint64(v[17:], boltTime(s.Expires))
	binary.BigEndian.PutUint64(v[25:], boltTime(s.RotatedAt))
	if s.Revoked {
		v[33] = 1
	}
	copy(v[34:66], s.Current[:])
	copy(v[66:98], s.Previous[:])
	v = binary.AppendUvarint(v, uint64(len(s.Subject)))
	v = append(v, s.Subject...)
	v = binary.AppendUvarint(v, uint64(len(s.Device)))
	v = append(v, s.Device...)
	return append(v, claims...), nil
}

// boltRecordSubject reads only the subject of a record, for the index.
func boltRecordSubject(v []byte) (string, error) {
	if len(v) < boltHeaderSize || (v[0] != boltVersion && v[0] != boltVersion1) {
		return "", errors.New("unreadable record (version or length)")
	}
	sub, _, ok := boltString(v[boltHeaderSize:])
	if !ok {
		return "", errors.New("unreadable record (subject)")
	}
	return sub, nil
}

// boltString reads a uvarint length and that many bytes from the front of
// b, and returns them with what follows.
func boltString(b []byte) (s string, rest []byte, ok bool) {
	n, w := binary.Uvarint(b)
	if w <= 0 || uint64(len(b)-w) < n {
		return "", nil, false
	}
	return string(b[w : w+int(n)]), b[w+int(n):], true
}

func decodeBoltSession(id string, v []byte) (Session, error) {
	if len(v) < boltHeaderSize || (v[0] != boltVersion && v[0] != boltVersion1) {
		return Session{}, fmt.Errorf("session %s: unreadable record (version or length)", id)
	}
	s := Session{
		ID:         id,
		Generation: binary.BigEndian.Uint64(v[1:]),
		Created:    fromBoltTime(binary.BigEndian.Uint64(v[9:])),
		Expires:    fromBoltTime(binary.BigEndian.Uint64(v[17:])),
		RotatedAt:  fromBoltTime(binary.BigEndian.Uint64(v[25:])),
		Revoked:    v[33]&1 != 0,
	}
	copy(s.Current[:], v[34:66])
	copy(s.Previous[:], v[66:98])
	var (
		rest = v[boltHeaderSize:]
		ok   bool
	)
	if s.Subject, rest, ok = boltString(rest); !ok {
		return Session{}, fmt.Errorf("session %s: unreadable record (subject)", id)
	}
	if v[0] == boltVersion {
		if s.Device, rest, ok = boltString(rest); !ok {
			return Session{}, fmt.Errorf("session %s: unreadable record (device)", id)
		}
	}
	if len(rest) > 0 {
		var err error
		if s.Claims, err = decodeSessionClaims(rest); err != nil {
			return Session{}, fmt.Errorf("session %s: %w", id, err)
		}
	}
	return s, nil
}

// decodeSessionClaims keeps numbers as json.Number so that a large integer claim
// comes back into the access token exactly as it went in.
func decodeSessionClaims(data []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("session claims: %w", err)
	}
	return m, nil
}

var _ Store = (*BoltStore)(nil)
