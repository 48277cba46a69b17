package redis

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkClusterFanout publishes over the HTTP API of node 1 to one channel whose 1,000
// subscribers are spread over 1 or 2 nodes sharing one redis-server, and reports deliveries per
// second end to end (publish → every subscriber has read the frame). Clients, nodes and Redis share
// the machine's cores, so compare the two rows of one run, not absolute figures across machines.
//
//	go test -run '^$' -bench ClusterFanout -benchtime 2000x ./pusher/redis/
func BenchmarkClusterFanout(b *testing.B) {
	const subscribers = 1000
	for _, nodes := range []int{1, 2} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			r := startRedis(b)
			var ns []*node
			for range nodes {
				ns = append(ns, startNode(b, r.url()))
			}
			var delivered atomic.Int64
			for i := range subscribers {
				c := ns[i%nodes].connect()
				c.subscribe("ticker", "")
				_ = c.c.SetReadDeadline(time.Time{})
				go func() {
					for {
						if _, _, err := c.c.ReadMessage(); err != nil {
							return
						}
						delivered.Add(1)
					}
				}()
			}
			payload := `{"price":"123.45","sku":"ABC-123","padding":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				ns[0].publish("ticker", "tick", payload, "")
			}
			want := int64(b.N) * subscribers
			deadline := time.Now().Add(time.Minute)
			for delivered.Load() < want && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			if got := delivered.Load(); got != want {
				b.Fatalf("delivered %d of %d", got, want)
			}
			b.ReportMetric(float64(want)/elapsed.Seconds(), "deliveries/s")
		})
	}
}
