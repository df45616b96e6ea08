//go:build !unix

package secretstore

// openItemFlags adds nothing where O_NOFOLLOW and O_NONBLOCK do not exist;
// the fstat after opening still refuses what is not a regular file.
const openItemFlags = 0
