package netwatch

import (
	"context"
	"fmt"
	"log/slog"
	"syscall"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"
)

func platformSources(ctx context.Context, log *slog.Logger, emit func(Kind, string)) {
	if err := watchNetlink(ctx, log, emit); err != nil {
		log.Warn("not watching for network changes", "err", err)
	}
	if err := watchLogind(ctx, log, emit); err != nil {
		// Expected without logind (containers, some distributions): the
		// clock check notices sleep instead.
		log.Info("not watching logind for wake; the clock check will notice sleep", "err", err)
	}
}

// netlinkGroups: addresses, routes and links, IPv4 and IPv6.
const netlinkGroups = unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR |
	unix.RTMGRP_IPV4_ROUTE | unix.RTMGRP_IPV6_ROUTE

// watchNetlink reports the kernel's address, route and link changes until
// ctx ends.
func watchNetlink(ctx context.Context, log *slog.Logger, emit func(Kind, string)) error {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, syscall.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("opening a netlink socket: %w", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK, Groups: netlinkGroups}); err != nil {
		syscall.Close(fd)
		return fmt.Errorf("subscribing to netlink route changes: %w", err)
	}
	readChanges(ctx, log, fd, "netlink", netlinkChanges, emit)
	return nil
}

var netlinkNames = map[uint16]string{
	syscall.RTM_NEWADDR: "RTM_NEWADDR", syscall.RTM_DELADDR: "RTM_DELADDR",
	syscall.RTM_NEWROUTE: "RTM_NEWROUTE", syscall.RTM_DELROUTE: "RTM_DELROUTE",
	syscall.RTM_NEWLINK: "RTM_NEWLINK", syscall.RTM_DELLINK: "RTM_DELLINK",
}

// netlinkChanges reads the messages of one netlink read and returns the
// names of the changes among them; a malformed read gives none.
func netlinkChanges(b []byte) []string {
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		return nil
	}
	var names []string
	for _, m := range msgs {
		if name, ok := netlinkNames[m.Header.Type]; ok {
			names = append(names, name)
		}
	}
	return names
}

// logind's sleep signal.
const (
	login1Path      = "/org/freedesktop/login1"
	login1Manager   = "org.freedesktop.login1.Manager"
	prepareForSleep = "PrepareForSleep"
)

// watchLogind reports logind's PrepareForSleep(false), sent as the machine
// resumes, until ctx ends. The bus is the system bus, or the one
// DBUS_SYSTEM_BUS_ADDRESS names.
func watchLogind(ctx context.Context, log *slog.Logger, emit func(Kind, string)) error {
	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		return fmt.Errorf("connecting to the system bus: %w", err)
	}
	if err := conn.AddMatchSignal(
		dbus.WithMatchObjectPath(login1Path),
		dbus.WithMatchInterface(login1Manager),
		dbus.WithMatchMember(prepareForSleep),
	); err != nil {
		conn.Close()
		return fmt.Errorf("subscribing to logind's PrepareForSleep: %w", err)
	}
	signals := make(chan *dbus.Signal, 8)
	conn.Signal(signals)
	context.AfterFunc(ctx, func() { conn.Close() })
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case s, ok := <-signals:
				if !ok {
					return
				}
				if s.Name != login1Manager+"."+prepareForSleep || len(s.Body) != 1 {
					continue
				}
				if sleeping, ok := s.Body[0].(bool); ok {
					log.Info("logind: " + map[bool]string{true: "going to sleep", false: "woke up"}[sleeping])
					if sleeping {
						emit(asleep, "logind")
					} else {
						emit(Wake, "logind")
					}
				}
			}
		}
	}()
	return nil
}
