package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/palyra/palyra-go/identity"
)

// dbFiles counts this process's open files on the database at path: the
// file itself, its WAL and its shared-memory index. It reads /proc/self/fd,
// which is why this file builds on Linux only.
func dbFiles(tb testing.TB, path string) (db, wal, shm int) {
	tb.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatalf("listing open files: %v", err)
	}
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil {
			continue // closed since the listing
		}
		switch target {
		case path:
			db++
		case path + "-wal":
			wal++
		case path + "-shm":
			shm++
		}
	}
	return db, wal, shm
}

// poolLoad runs workers goroutines that each make ops store calls, mixing
// reads (the handshake's device lookup, listings) with writes (presence,
// audit rows), and returns the most files on the database seen open at
// once, sampled by every worker every few calls.
func poolLoad(tb testing.TB, s *Store, path string, ids []identity.DeviceID, workers, ops int) (maxDB, maxWAL int) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	sample := func() {
		db, wal, _ := dbFiles(tb, path)
		mu.Lock()
		maxDB, maxWAL = max(maxDB, db), max(maxWAL, wal)
		mu.Unlock()
	}
	for w := range workers {
		wg.Go(func() {
			for i := range ops {
				id := ids[(w+i)%len(ids)]
				var err error
				switch i % 4 {
				case 0, 1:
					_, err = s.GetDevice(ctx, id)
				case 2:
					err = s.TouchNodes(ctx, map[identity.DeviceID]time.Time{id: t0.Add(time.Duration(i) * time.Second)})
				case 3:
					_, err = s.ListNodes(ctx)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				if i%8 == 0 {
					sample()
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		tb.Fatalf("under load: %v", firstErr)
	}
	return maxDB, maxWAL
}

// loadFixture opens a store at a fresh path with n registered nodes.
func loadFixture(tb testing.TB, n int, opts Options) (*Store, string, []identity.DeviceID) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "gateway.db")
	opts.Now = fixedClock
	s, err := Open(context.Background(), path, opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	ids := make([]identity.DeviceID, n)
	for i := range ids {
		d, _ := pairedDevice(tb, s)
		ids[i] = d.ID
		if err := s.UpsertNode(context.Background(), Node{DeviceID: d.ID, Name: fmt.Sprintf("node %d", i), LastSeen: t0}); err != nil {
			tb.Fatalf("UpsertNode: %v", err)
		}
	}
	return s, path, ids
}

// The pool is sized for SQLite: one writer, one connection for listings
// and MaxReaders readers, so however many goroutines call the store at
// once, the files it holds open on the database stay bounded (the gateway
// once held 12,923 on it under a reconnect storm, and ran out of files).
func TestPoolBoundsOpenFiles(t *testing.T) {
	const readers = 3
	s, path, ids := loadFixture(t, 16, Options{MaxReaders: readers})
	maxDB, maxWAL := poolLoad(t, s, path, ids, 64, 200)
	t.Logf("64 goroutines × 200 calls: at most %d files open on the database, %d on its WAL", maxDB, maxWAL)
	// The writer, the listings' connection and the readers; modernc keeps
	// one file open per connection on each.
	if bound := 2 + readers; maxDB > bound || maxWAL > bound {
		t.Fatalf("%d files open on the database and %d on its WAL at once; the pool allows %d connections", maxDB, maxWAL, bound)
	}
	if maxDB < 1 {
		t.Fatal("saw no file open on the database: the count is not looking at the right path")
	}
}

// BenchmarkPoolOpenFiles reports the files open on the database under
// concurrent load (64 goroutines) with the default pool.
func BenchmarkPoolOpenFiles(b *testing.B) {
	s, path, ids := loadFixture(b, 16, Options{})
	maxDB, maxWAL := 0, 0
	for b.Loop() {
		db, wal := poolLoad(b, s, path, ids, 64, 40)
		maxDB, maxWAL = max(maxDB, db), max(maxWAL, wal)
	}
	b.ReportMetric(float64(maxDB), "db-files")
	b.ReportMetric(float64(maxWAL), "wal-files")
}
