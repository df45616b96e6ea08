// Package testpg gives tests a real PostgreSQL: one private server per
// test binary, started on first use in a temporary directory (initdb, then
// postgres on a Unix socket there, with no TCP listener and fsync off),
// and a fresh database per test, dropped when the test ends.
//
// A package that uses it runs its tests through Main, which stops the
// server when they are done:
//
//	func TestMain(m *testing.M) { os.Exit(testpg.Main(m)) }
//
// The server is the child of a small shell that holds the read end of a
// pipe from the test binary: when the pipe closes, because Main stops it
// or because the test binary died, the shell shuts the server down and
// removes its directory, so no server outlives its tests. Run as root, the
// server runs as the postgres user (Debian's postgresql package makes it),
// since PostgreSQL refuses to run as root.
//
// When PostgreSQL is not installed, New fails the test saying to install
// it: tests on PostgreSQL are not skipped.
package testpg

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Superuser is the server's superuser, which its socket trusts without a
// password. Other roles log in with a password (Database.Role).
const Superuser = "testpg"

// startTimeout bounds initdb and the server's start; stopTimeout its stop.
const (
	startTimeout = 2 * time.Minute
	stopTimeout  = 30 * time.Second
)

var (
	mu      sync.Mutex
	running *server
	failed  error // why the server could not start; not tried again
	seq     atomic.Uint64
)

// Main runs the tests of m and then stops the server, if any test started
// one. It returns m.Run's exit code.
func Main(m *testing.M) int {
	code := m.Run()
	mu.Lock()
	defer mu.Unlock()
	if running != nil {
		if err := running.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "testpg:", err)
			if code == 0 {
				code = 1
			}
		}
		running = nil
	}
	return code
}

// Database is a database of its own for one test, on the shared server.
type Database struct {
	// Name is the database's name.
	Name string
	// URL connects to it as Superuser, over the server's socket.
	URL string
	// SocketDir is the directory of the server's Unix socket.
	SocketDir string
	srv       *server
}

// New creates an empty database for tb (CREATE DATABASE … TEMPLATE
// template0), starting the server first if this binary has none yet, and
// drops it when tb ends.
func New(tb testing.TB) Database {
	tb.Helper()
	srv, err := get()
	if err != nil {
		tb.Fatalf("testpg: %v", err)
	}
	name := fmt.Sprintf("t%d_%s", seq.Add(1), nameChars.ReplaceAllString(strings.ToLower(tb.Name()), "_"))
	if len(name) > 63 { // PostgreSQL's NAMEDATALEN - 1
		name = name[:63]
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := srv.admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0"+srv.strategy); err != nil {
		tb.Fatalf("testpg: creating database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// FORCE ends the connections a failed test left open.
		if _, err := srv.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			tb.Errorf("testpg: dropping database %s: %v", name, err)
		}
	})
	return Database{Name: name, URL: srv.url(Superuser, "", name), SocketDir: srv.dir, srv: srv}
}

var nameChars = regexp.MustCompile(`[^a-z0-9_]+`)

// URLFor is a URL for database on this server as user with password
// (none when empty). The database and user need not exist: tests of
// refusals use it.
func (d Database) URLFor(userName, password, database string) string {
	return d.srv.url(userName, password, database)
}

// Role creates a role that logs in with password and owns d (so it may
// create tables there), dropped when tb ends, and returns its name and a
// URL for d as that role.
func (d Database) Role(tb testing.TB, password string) (name, roleURL string) {
	tb.Helper()
	name = fmt.Sprintf("r%d_%s", seq.Add(1), d.Name)
	if len(name) > 63 {
		name = name[:63]
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	role := pgx.Identifier{name}.Sanitize()
	// CREATE ROLE takes no parameters; the password is a literal,
	// quoted as a string.
	quoted := "'" + strings.ReplaceAll(password, "'", "''") + "'"
	for _, q := range []string{
		"CREATE ROLE " + role + " LOGIN PASSWORD " + quoted,
		"ALTER DATABASE " + pgx.Identifier{d.Name}.Sanitize() + " OWNER TO " + role,
	} {
		if _, err := d.srv.admin.Exec(ctx, q); err != nil {
			tb.Fatalf("testpg: creating role %s: %v", name, err)
		}
	}
	// Registered after New's cleanup, so it runs before it: the role
	// owns the database and what is in it, so the database goes first.
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, q := range []string{
			"DROP DATABASE IF EXISTS " + pgx.Identifier{d.Name}.Sanitize() + " WITH (FORCE)",
			"DROP ROLE IF EXISTS " + role,
		} {
			if _, err := d.srv.admin.Exec(ctx, q); err != nil {
				tb.Errorf("testpg: dropping role %s: %v", name, err)
			}
		}
	})
	return name, d.srv.url(name, password, d.Name)
}

// Conn connects to d as Superuser, for what a test does as the
// database's operator; the connection is closed when tb ends.
func (d Database) Conn(tb testing.TB) *pgx.Conn {
	tb.Helper()
	conn, err := pgx.Connect(tb.Context(), d.URL)
	if err != nil {
		tb.Fatalf("testpg: connecting to %s: %v", d.Name, err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// Terminate ends the server processes of d's connections whose
// application_name is application, as pg_terminate_backend by an operator
// (or a server process that crashed) would: their clients see the
// connection fail. It waits, bounded, until there is such a connection.
func (d Database) Terminate(tb testing.TB, application string) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		var n int
		err := d.srv.admin.QueryRow(context.Background(), `SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = $1 AND datname = $2`, application, d.Name).Scan(&n)
		switch {
		case err != nil:
			tb.Fatalf("testpg: terminating the connections named %q: %v", application, err)
		case n > 0:
			return
		case time.Now().After(deadline):
			tb.Fatalf("testpg: no connection to %s named %q", d.Name, application)
		}
		<-tick.C
	}
}

// server is the running PostgreSQL of this binary.
type server struct {
	dir   string // the temporary directory: data/, the socket, owned by the server's user
	admin *pgxpool.Pool
	// keep is the write end of the pipe whose closing stops the server.
	keep *os.File
	// exited is closed when the watchdog shell has exited.
	exited chan struct{}
	cmd    *exec.Cmd
	// strategy ends CREATE DATABASE: copying the template's files is
	// about twice as fast for an empty database with fsync off as
	// PostgreSQL 15's default, which writes it all to the WAL.
	strategy string
}

func (s *server) url(userName, password, database string) string {
	u := url.URL{Scheme: "postgres", Path: "/" + database, RawQuery: "host=" + url.QueryEscape(s.dir) + "&sslmode=disable"}
	if password != "" {
		u.User = url.UserPassword(userName, password)
	} else {
		u.User = url.User(userName)
	}
	return u.String()
}

func get() (*server, error) {
	mu.Lock()
	defer mu.Unlock()
	if running != nil {
		return running, nil
	}
	if failed != nil {
		return nil, failed
	}
	running, failed = start()
	return running, failed
}

// binaries finds initdb and postgres: in the newest /usr/lib/postgresql/*/bin
// (Debian puts them there, off PATH), or on PATH.
func binaries() (initdb, postgres string, err error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		i, p := filepath.Join(d, "initdb"), filepath.Join(d, "postgres")
		if isExecutable(i) && isExecutable(p) {
			return i, p, nil
		}
	}
	i, ierr := exec.LookPath("initdb")
	p, perr := exec.LookPath("postgres")
	if ierr == nil && perr == nil {
		return i, p, nil
	}
	return "", "", errors.New("PostgreSQL is not installed (no initdb and postgres in /usr/lib/postgresql/*/bin or on PATH): install postgresql (make test does)")
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// runAs is the command prefix that runs a program as the server's user:
// nothing when not root, setpriv to the postgres user when root.
func runAs() (prefix []string, uid, gid int, err error) {
	if os.Geteuid() != 0 {
		return nil, os.Geteuid(), os.Getegid(), nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, 0, 0, errors.New("running as root, and there is no postgres user to run PostgreSQL as (PostgreSQL refuses root): install postgresql (make test does)")
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		return nil, 0, 0, errors.New("running as root needs setpriv to run PostgreSQL as the postgres user: install util-linux")
	}
	return []string{setpriv, "--reuid=" + u.Uid, "--regid=" + u.Gid, "--clear-groups", "--"}, uid, gid, nil
}

// watchdog runs the server ("$@") until its standard input, a pipe from
// the test binary, closes; then it shuts the server down at once (SIGQUIT:
// immediate shutdown, fine for data thrown away) and removes the
// directory ($0).
const watchdog = `"$@" &
pg=$!
read -r _ || true
kill -QUIT "$pg" 2>/dev/null
wait "$pg"
rm -rf -- "$0"`

func start() (*server, error) {
	initdb, postgres, err := binaries()
	if err != nil {
		return nil, err
	}
	prefix, uid, gid, err := runAs()
	if err != nil {
		return nil, err
	}
	// Short: the socket's path must fit in 107 bytes.
	dir, err := os.MkdirTemp("/tmp", "testpg-")
	if err != nil {
		return nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	if err := os.Chown(dir, uid, gid); err != nil {
		cleanup()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	data := filepath.Join(dir, "data")
	env := []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "LANG=C"}
	argv := append(append(append([]string{}, prefix...), initdb),
		"-D", data, "-U", Superuser, "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
	init := exec.CommandContext(ctx, argv[0], argv[1:]...)
	init.Dir, init.Env = dir, env
	if out, err := init.CombinedOutput(); err != nil {
		cleanup()
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	// The superuser over the socket without a password; any other role
	// with its password (tests of refused logins need one that asks).
	hba := "local all " + Superuser + " trust\nlocal all all scram-sha-256\n"
	if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		cleanup()
		return nil, err
	}

	args := append(append([]string{"-c", watchdog, dir}, prefix...), postgres, "-D", data, "-k", dir,
		"-c", "listen_addresses=", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "shared_buffers=32MB", "-c", "max_connections=200", "-c", "logging_collector=off", "-c", "lc_messages=C")
	cmd := exec.Command("/bin/sh", args...)
	cmd.Dir, cmd.Env = dir, env
	ownProcessGroup(cmd)
	stdin, keep, err := os.Pipe()
	if err != nil {
		cleanup()
		return nil, err
	}
	logs, logw, err := os.Pipe()
	if err != nil {
		cleanup()
		return nil, err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, logw, logw
	if err := cmd.Start(); err != nil {
		cleanup()
		return nil, fmt.Errorf("starting postgres: %v", err)
	}
	stdin.Close()
	logw.Close()
	s := &server{dir: dir, keep: keep, exited: make(chan struct{}), cmd: cmd}
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()

	// The server says when it is ready; wait for that line (or its end).
	ready := make(chan struct{})
	var tail lastLines
	go func() {
		sc := bufio.NewScanner(logs)
		said := false
		for sc.Scan() {
			tail.add(sc.Text())
			if !said && strings.Contains(sc.Text(), "database system is ready to accept connections") {
				said = true
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-s.exited:
		return nil, fmt.Errorf("postgres exited before it was ready:\n%s", tail.String())
	case <-ctx.Done():
		s.stop()
		return nil, fmt.Errorf("postgres not ready after %v:\n%s", startTimeout, tail.String())
	}
	if s.admin, err = pgxpool.New(ctx, s.url(Superuser, "", "postgres")); err == nil {
		err = s.admin.Ping(ctx)
	}
	var version int
	if err == nil {
		err = s.admin.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version)
	}
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("connecting to the test server: %v", err)
	}
	if version >= 150000 {
		s.strategy = " STRATEGY FILE_COPY"
	}
	return s, nil
}

// stop closes the pipe the watchdog waits on and waits for it to have
// stopped the server and removed its directory; past stopTimeout it kills
// the whole process group.
func (s *server) stop() error {
	if s.admin != nil {
		s.admin.Close()
	}
	s.keep.Close()
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-s.exited:
		return nil
	case <-t.C:
		killProcessGroup(s.cmd)
		<-s.exited
		os.RemoveAll(s.dir)
		return fmt.Errorf("postgres did not stop within %v; killed it", stopTimeout)
	}
}

// lastLines keeps the server's last log lines, for a failure's message.
type lastLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *lastLines) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
	if len(l.lines) > 40 {
		l.lines = l.lines[1:]
	}
}

func (l *lastLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}
