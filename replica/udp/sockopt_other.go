//go:build !linux

package udp

import "net"

// enableDropCount: only Linux reports the socket's drops.
func enableDropCount(*net.UDPConn) bool { return false }

func dropCount([]byte) (uint32, bool) { return 0, false }
