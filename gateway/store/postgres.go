package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

// DefaultConnectTimeout bounds connecting to PostgreSQL when the URL does
// not say (connect_timeout).
const DefaultConnectTimeout = 10 * time.Second

// IsDatabaseURL reports whether s names a PostgreSQL database
// (postgres:// or postgresql://) rather than a file.
func IsDatabaseURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// OpenPostgres opens the store in the PostgreSQL database that rawURL
// (postgres://user:password@host:port/database?sslmode=…) names, and
// brings its schema up to date (unless opts.SkipMigrations). The
// database must exist. Several gateways may use one database at once.
//
// The URL's password appears in no error: errors name the database as
// DescribeDatabase does.
func OpenPostgres(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	cfg, where, err := parseDatabaseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("opening gateway store: %w", err)
	}
	s, err := openPostgres(ctx, cfg, opts)
	if err != nil {
		return nil, fmt.Errorf("opening gateway store in PostgreSQL database %s: %w", where, redact(err, cfg.ConnConfig.Password))
	}
	return s, nil
}

func openPostgres(ctx context.Context, cfg *pgxpool.Config, opts Options) (*Store, error) {
	readers := opts.MaxReaders
	if readers <= 0 {
		readers = DefaultMaxReaders
	}
	cfg.MaxConns = int32(readers + 1)
	cfg.MinConns = 0
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = DefaultApplicationName
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// The pool connects lazily; connect now, so that a wrong address,
	// password or database name fails Open, with a message saying which.
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, connectError(err, cfg.ConnConfig.Config)
	}
	sdb := stdlib.OpenDBFromPool(pool)
	sdb.SetMaxOpenConns(readers + 1)
	h := &db{sdb, postgresDialect, nil}
	s := &Store{db: h, rdb: h, ldb: h, pool: pool, dialect: postgresDialect, now: clock(opts)}
	if err := s.prepareSchema(ctx, opts); err != nil {
		s.closeDBs()
		return nil, err
	}
	if err := s.prepareStatements(ctx, opts); err != nil {
		s.closeDBs()
		return nil, err
	}
	return s, nil
}

// DefaultApplicationName is what the gateway's connections are called in
// pg_stat_activity when the URL sets no application_name.
const DefaultApplicationName = "palyra-gateway"

// Dialer returns a function that opens one connection of its own to the
// database rawURL names, outside the store's pool, for a job that needs
// the connection itself: LISTEN, or a session-level advisory lock that
// must go when the connection does. Its application_name is the URL's (or
// DefaultApplicationName) followed by purpose, so that each gateway's
// connections can be told apart (give each gateway its own
// application_name in its URL). Errors say why in one line and never
// carry the password.
func Dialer(rawURL, purpose string) (func(context.Context) (*pgx.Conn, error), error) {
	cfg, _, err := parseDatabaseURL(rawURL)
	if err != nil {
		return nil, err
	}
	cc := cfg.ConnConfig
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = DefaultConnectTimeout
	}
	name := cc.RuntimeParams["application_name"]
	if name == "" {
		name = DefaultApplicationName
	}
	cc.RuntimeParams["application_name"] = name + " " + purpose
	return func(ctx context.Context) (*pgx.Conn, error) {
		conn, err := pgx.ConnectConfig(ctx, cc.Copy())
		if err != nil {
			return nil, redact(connectError(err, cc.Config), cc.Password)
		}
		return conn, nil
	}, nil
}

// parseDatabaseURL parses a postgres:// URL, and describes it without its
// password for messages.
func parseDatabaseURL(rawURL string) (*pgxpool.Config, string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error repeats the whole URL, password and all: keep its
		// reason only.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, "", fmt.Errorf("the database URL is not valid: %v", err)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return nil, "", errors.New("the database URL is not valid: it must start with postgres:// (postgres://USER:PASSWORD@HOST:PORT/DATABASE)")
	}
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		pw, _ := u.User.Password()
		return nil, "", fmt.Errorf("the database URL is not valid: %s", parseReason(err, pw))
	}
	if cfg.ConnConfig.Database == "" {
		return nil, "", errors.New("the database URL is not valid: it names no database (postgres://HOST/DATABASE)")
	}
	return cfg, describe(cfg.ConnConfig.Config), nil
}

// parseReason is pgx's reason for refusing a connection string, without
// the string (which pgx quotes with its password masked, on a best-effort
// basis only).
func parseReason(err error, password string) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "`: "); i >= 0 {
		msg = msg[i+3:]
	}
	return redact(errors.New(firstLine(msg)), password).Error()
}

// DescribeDatabase names the database of a postgres:// URL for logs and
// messages, without its password or other parameters:
// postgres://USER@HOST:PORT/DATABASE, or for a Unix socket
// postgres://USER@/DATABASE?host=DIR. A URL that does not parse is
// described as such.
func DescribeDatabase(rawURL string) string {
	_, where, err := parseDatabaseURL(rawURL)
	if err != nil {
		return "(a database URL that is not valid)"
	}
	return where
}

func describe(c pgconn.Config) string {
	u := url.URL{Scheme: "postgres", User: url.User(c.User), Path: "/" + c.Database}
	if strings.HasPrefix(c.Host, "/") {
		u.RawQuery = "host=" + c.Host
	} else {
		u.Host = net.JoinHostPort(c.Host, strconv.Itoa(int(c.Port)))
	}
	return u.String()
}

// connectError says in one line why connecting failed: the server cannot
// be reached, refused the login, or has no such database. It keeps err
// for errors.As (a *pgconn.PgError, say) but not its text, which lists
// every address pgx tried, over several lines.
func connectError(err error, c pgconn.Config) error {
	var pgErr *pgconn.PgError
	var opErr *net.OpError
	where := "the PostgreSQL server at " + c.Host + ":" + strconv.Itoa(int(c.Port))
	if strings.HasPrefix(c.Host, "/") {
		where = fmt.Sprintf("the PostgreSQL server's socket %s/.s.PGSQL.%d", c.Host, c.Port)
	}
	var msg string
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "3D000": // invalid_catalog_name
		msg = fmt.Sprintf("database %q does not exist on %s; create it (createdb %s) or fix the URL", c.Database, where, c.Database)
	case errors.As(err, &pgErr) && (pgErr.Code == "28P01" || pgErr.Code == "28000"): // invalid_password, invalid_authorization_specification
		msg = fmt.Sprintf("%s refused the login: %s; check the user and password", where, pgErr.Message)
	case errors.As(err, &pgErr):
		msg = fmt.Sprintf("%s refused the connection: %s (SQLSTATE %s)", where, pgErr.Message, pgErr.Code)
	case errors.As(err, &opErr):
		msg = fmt.Sprintf("cannot reach %s: %v", where, opErr.Err)
	case errors.Is(err, context.DeadlineExceeded):
		msg = fmt.Sprintf("cannot reach %s: no answer in time", where)
	default:
		msg = fmt.Sprintf("connecting to %s: %s", where, firstLine(err))
	}
	return &oneLineError{msg: msg, err: err}
}

func firstLine(v any) string {
	s := fmt.Sprint(v)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// oneLineError is a message of this package's over the error it explains.
type oneLineError struct {
	msg string
	err error
}

func (e *oneLineError) Error() string { return e.msg }
func (e *oneLineError) Unwrap() error { return e.err }

// redact keeps a password out of an error's text, whichever layer put it
// there; errors.Is and As still see the error under it.
func redact(err error, password string) error {
	if err == nil || password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return &oneLineError{msg: strings.ReplaceAll(err.Error(), password, "xxxxx"), err: err}
}
