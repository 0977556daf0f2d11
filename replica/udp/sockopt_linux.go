package udp

import (
	"encoding/binary"
	"net"
	"syscall"
	"unsafe"
)

// enableDropCount asks Linux to report, with every datagram read, how
// many the socket's buffer has dropped so far (SO_RXQ_OVFL).
func enableDropCount(c *net.UDPConn) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RXQ_OVFL, 1)
	}); err != nil || serr != nil {
		return false
	}
	return true
}

// dropCount reads the SO_RXQ_OVFL count from a datagram's control
// messages, without allocating.
func dropCount(oob []byte) (uint32, bool) {
	const hdr = int(unsafe.Sizeof(syscall.Cmsghdr{}))
	for len(oob) >= hdr {
		h := (*syscall.Cmsghdr)(unsafe.Pointer(&oob[0]))
		n := int(h.Len)
		if n < hdr || n > len(oob) {
			return 0, false
		}
		if h.Level == syscall.SOL_SOCKET && h.Type == syscall.SO_RXQ_OVFL && n >= hdr+4 {
			return binary.NativeEndian.Uint32(oob[hdr:]), true
		}
		oob = oob[min(cmsgAlign(n), len(oob)):]
	}
	return 0, false
}

func cmsgAlign(n int) int {
	const a = int(unsafe.Sizeof(uintptr(0)))
	return (n + a - 1) &^ (a - 1)
}
