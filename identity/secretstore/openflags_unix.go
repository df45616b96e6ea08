//go:build unix

package secretstore

import "syscall"

// openItemFlags makes opening an item fail on a symlink (O_NOFOLLOW) and
// return at once on a FIFO (O_NONBLOCK) instead of waiting for a writer; the
// fstat that follows then refuses anything that is not a regular file.
const openItemFlags = syscall.O_NOFOLLOW | syscall.O_NONBLOCK
