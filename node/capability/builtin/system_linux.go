package builtin

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
)

func kernelRelease(context.Context) (string, bool) {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

// uptimeSeconds reads the first field of /proc/uptime ("12345.67 ...").
func uptimeSeconds(context.Context) (int64, bool) {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0, false
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return 0, false
	}
	secs, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return 0, false
	}
	return int64(secs), true
}

// memoryTotal reads MemTotal from /proc/meminfo ("MemTotal: 16318412 kB").
func memoryTotal(context.Context) (uint64, bool) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 || fields[0] != "MemTotal:" || fields[2] != "kB" {
			continue
		}
		kb, err := strconv.ParseUint(fields[1], 10, 64)
		if err != nil {
			return 0, false
		}
		return kb * 1024, true
	}
	return 0, false
}
