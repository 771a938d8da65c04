// sshload: an SSH load generator for bench/run.sh, one process, no process
// start-up per connection (the stock ssh client costs ~30 ms of CPU to start,
// which would limit a handshake-rate test to the client). Go's
// golang.org/x/crypto/ssh from Debian (golang-golang-x-crypto-dev), built by
// bench/run.sh with GO111MODULE=off; nothing is downloaded.
//
//	sshload handshakes ADDR KEY DEST CLIENTS SECONDS
//	    CLIENTS goroutines each connect in a loop for SECONDS: TCP, key
//	    exchange, public-key authentication, one direct-tcpip channel to DEST
//	    (host:port) echoing one byte, close. Prints one line:
//	    "connections=N failures=F seconds=S per_second=R p50_ms=A p99_ms=B"
//	sshload idle ADDR KEY DEST COUNT CONCURRENCY
//	    Opens COUNT authenticated connections (at most CONCURRENCY in key
//	    exchange at once), prints "established=N failures=F seconds=S" and holds
//	    them, answering keepalives, until a line arrives on stdin: "answer" opens
//	    one direct-tcpip channel to DEST on every connection at once, each
//	    echoing 16 bytes, and prints "answering=N of=COUNT seconds=S"; "quit"
//	    (or EOF) closes everything.
//
// Algorithms are pinned as bench/common.sh pins them for ssh: curve25519-sha256,
// ssh-ed25519 host keys, aes128-gcm@openssh.com.
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

func config(keyFile string) *ssh.ClientConfig {
	pem, err := os.ReadFile(keyFile)
	if err != nil {
		fail("read key: %v", err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		fail("parse key: %v", err)
	}
	return &ssh.ClientConfig{
		User:              "root",
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback:   ssh.InsecureIgnoreHostKey(), // loopback benchmark servers with fresh keys
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
		Config: ssh.Config{
			KeyExchanges: []string{"curve25519-sha256"},
			Ciphers:      []string{"aes128-gcm@openssh.com"},
		},
		Timeout: 30 * time.Second,
	}
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "sshload: "+format+"\n", args...)
	os.Exit(1)
}

// dial makes one authenticated connection.
func dial(addr string, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	conn, err := net.DialTimeout("tcp", addr, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(cfg.Timeout))
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	// NewClient answers global requests (the server's keepalives) with a failure
	// reply, which is an answer: the server counts the client alive.
	return ssh.NewClient(c, chans, reqs), nil
}

// echo opens a direct-tcpip channel to dest and checks that payload comes back.
func echo(client *ssh.Client, dest string, payload []byte) error {
	// Dial sends the host as given: a service name for fived, an address for sshd.
	ch, err := client.Dial("tcp", dest)
	if err != nil {
		return err
	}
	defer ch.Close()
	if _, err := ch.Write(payload); err != nil {
		return err
	}
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(ch, got); err != nil {
		return err
	}
	if !bytes.Equal(got, payload) {
		return fmt.Errorf("echo mismatch")
	}
	return nil
}

func handshakes(addr, key, dest string, clients int, seconds float64) {
	cfg := config(key)
	deadline := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	var mu sync.Mutex
	var latencies []float64
	var failures int64
	var firstError atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []float64
			for time.Now().Before(deadline) {
				t0 := time.Now()
				client, err := dial(addr, cfg)
				if err == nil {
					err = echo(client, dest, []byte{'x'})
					client.Close()
				}
				if err != nil {
					atomic.AddInt64(&failures, 1)
					firstError.CompareAndSwap(nil, err.Error())
					time.Sleep(10 * time.Millisecond)
					continue
				}
				mine = append(mine, float64(time.Since(t0).Microseconds())/1000)
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	sort.Float64s(latencies)
	pct := func(p float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		i := int(p * float64(len(latencies)-1))
		return latencies[i]
	}
	if e := firstError.Load(); e != nil {
		fmt.Fprintf(os.Stderr, "sshload: first failure: %v\n", e)
	}
	fmt.Printf("connections=%d failures=%d seconds=%.2f per_second=%.1f p50_ms=%.2f p99_ms=%.2f\n",
		len(latencies), failures, elapsed, float64(len(latencies))/elapsed, pct(0.50), pct(0.99))
}

func idle(addr, key, dest string, count, concurrency int) {
	cfg := config(key)
	clients := make([]*ssh.Client, count)
	var failures int64
	var firstError atomic.Value
	start := time.Now()
	slots := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for i := 0; i < count; i++ {
		wg.Add(1)
		slots <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-slots }()
			c, err := dial(addr, cfg)
			if err != nil {
				atomic.AddInt64(&failures, 1)
				firstError.CompareAndSwap(nil, err.Error())
				return
			}
			clients[i] = c
		}(i)
	}
	wg.Wait()
	if e := firstError.Load(); e != nil {
		fmt.Fprintf(os.Stderr, "sshload: first failure: %v\n", e)
	}
	fmt.Printf("established=%d failures=%d seconds=%.2f\n", int64(count)-failures, failures, time.Since(start).Seconds())
	lines := bufio.NewScanner(os.Stdin)
	for lines.Scan() {
		if lines.Text() != "answer" {
			break
		}
		var ok int64
		t0 := time.Now()
		var wg sync.WaitGroup
		for _, c := range clients {
			if c == nil {
				continue
			}
			wg.Add(1)
			go func(c *ssh.Client) {
				defer wg.Done()
				if echo(c, dest, []byte("0123456789abcdef")) == nil {
					atomic.AddInt64(&ok, 1)
				}
			}(c)
		}
		wg.Wait()
		fmt.Printf("answering=%d of=%d seconds=%.2f\n", ok, count, time.Since(t0).Seconds())
	}
	for _, c := range clients {
		if c != nil {
			c.Close()
		}
	}
}

func main() {
	args := os.Args[1:]
	number := func(s string) int {
		n, err := strconv.Atoi(s)
		if err != nil {
			fail("not a number: %s", s)
		}
		return n
	}
	switch {
	case len(args) == 6 && args[0] == "handshakes":
		seconds, err := strconv.ParseFloat(args[5], 64)
		if err != nil {
			fail("not a number: %s", args[5])
		}
		handshakes(args[1], args[2], args[3], number(args[4]), seconds)
	case len(args) == 6 && args[0] == "idle":
		idle(args[1], args[2], args[3], number(args[4]), number(args[5]))
	default:
		fail("usage: sshload handshakes ADDR KEY DEST CLIENTS SECONDS | idle ADDR KEY DEST COUNT CONCURRENCY")
	}
}
