//go:build !linux

package bench

import (
	"errors"
	"sync/atomic"
)

// epollLoop is Linux's; elsewhere every socket keeps a reading goroutine, which costs the load
// generator more CPU per delivery (measure on Linux).
type epollLoop struct{}

func newEpollLoop(*atomic.Bool) (*epollLoop, error) { return nil, errors.New("no epoll") }

func (l *epollLoop) stop() {}

// startRaw is false: the socket is read by a goroutine.
func (g *readerGroup) startRaw(*wsConn, func([]byte), func(error)) bool { return false }
