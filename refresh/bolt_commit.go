package refresh

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// boltGroupMax bounds the writes one transaction takes, so that one
// commit never holds the writer lock for long.
const boltGroupMax = 1000

// boltGroup commits the store's writes in shared transactions (group
// commit). A bbolt write transaction ends with fsyncs that take
// milliseconds, and only one runs at a time, so a busy store spent its time
// queueing for the disk, one rotation after another. Now a write that finds
// no commit running commits at once; the writes that arrive meanwhile wait,
// and the first of them then commits them all in one transaction: n waiting
// writes cost one commit, and a lone write waits for nobody.
//
// bbolt's DB.Batch groups by a fixed window instead (MaxBatchDelay, 10 ms):
// a lone write waits out the window, and when a commit takes longer than
// the window (a busy disk), batches queue behind each other rather than
// growing.
//
// As with DB.Batch, a write's function may run more than once: when one
// function of a transaction fails, the transaction is rolled back, that
// write runs alone and the others run again. A function must therefore set
// its results afresh on every call and change nothing outside the
// transaction; its caller acts on them once update has returned nil.
type boltGroup struct {
	mu      sync.Mutex
	queue   []*boltWrite // waiting for the next commit, oldest first
	running bool         // a commit is running or about to: the queue has a leader
}

type boltWrite struct {
	fn   func(*bolt.Tx) error
	done chan error // the outcome; errLeadCommit makes the write the next leader
}

// errLeadCommit tells a waiting write that it commits the next group; it
// never leaves boltGroup.
var errLeadCommit = errors.New("lead the next commit")

// update runs fn in a write transaction of db, shared with other writes,
// and returns once that transaction has committed (nil) or failed.
func (g *boltGroup) update(db *bolt.DB, fn func(*bolt.Tx) error) error {
	w := &boltWrite{fn: fn, done: make(chan error, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, w)
	lead := !g.running
	g.running = true
	g.mu.Unlock()
	if !lead {
		if err := <-w.done; err != errLeadCommit {
			return err
		}
	}
	g.commitNext(db)
	return <-w.done
}

// commitNext commits the writes queued now (the leader's among them), then
// hands the lead to the first write queued meanwhile, if any.
func (g *boltGroup) commitNext(db *bolt.DB) {
	g.mu.Lock()
	n := min(len(g.queue), boltGroupMax)
	group := slices.Clone(g.queue[:n])
	g.queue = slices.Delete(g.queue, 0, n)
	g.mu.Unlock()

	commitBoltGroup(db, group)
	g.handOff()
}

// handOff gives the lead to the first write queued, or ends the run.
func (g *boltGroup) handOff() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.queue) == 0 {
		g.running = false
		return
	}
	g.queue[0].done <- errLeadCommit
}

// commitBoltGroup runs the writes in one transaction and tells each the
// outcome. A write whose function fails runs alone, so its error is its
// own; the others go again without it.
func commitBoltGroup(db *bolt.DB, group []*boltWrite) {
	for len(group) > 0 {
		failed := -1
		err := boltUpdate(db, func(tx *bolt.Tx) error {
			for i, w := range group {
				if err := callBoltWrite(w.fn, tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			for _, w := range group {
				w.done <- err
			}
			return
		}
		w := group[failed]
		w.done <- boltUpdate(db, func(tx *bolt.Tx) error { return callBoltWrite(w.fn, tx) })
		group = slices.Delete(group, failed, failed+1)
	}
}

// boltUpdate is db.Update with a panic of bolt's own (a corrupt file can
// make a commit panic) turned into the group's error: every write of the
// group is told, and the lead passes on.
func boltUpdate(db *bolt.DB, fn func(*bolt.Tx) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: bolt commit panicked: %v", ErrStoreUnavailable, p)
		}
	}()
	return db.Update(fn)
}

// callBoltWrite turns a panic into the write's error: the leader runs other
// callers' functions, and a panic must not leave them waiting forever.
func callBoltWrite(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("bolt write panicked: %v", p)
		}
	}()
	return fn(tx)
}
