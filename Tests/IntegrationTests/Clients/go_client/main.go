// Command go_client opens one channel to a fived service with Go's
// golang.org/x/crypto/ssh, for the client matrix
// (Tests/IntegrationTests/ClientMatrixTests.swift). The tests build it at run
// time (GO111MODULE=off, GOPATH=/usr/share/gocode: Debian's
// golang-golang-x-crypto-dev) into their temporary directory.
//
//	go_client -port P -user U -key FILE -form FORM -service NAME [-input FILE]
//	go_client -version
//
// FORM is direct-tcpip (client.Dial("tcp", "NAME:1")), exec (NAME as the command)
// or subsystem (NAME as the subsystem). The bytes of -input (none without it) are
// sent, then EOF (CloseWrite), while everything the channel carries is copied to
// stdout and its stderr to stderr. The host key is not checked
// (ssh.InsecureIgnoreHostKey).
//
// The last stderr line says how the channel ended, for the test to read:
//
//	fived-client result: exit-status=N | exit-signal=NAME | none
//
// An open failure prints "fived-client open-failed: REASON" and exits 2; any
// other error exits 1.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"

	"golang.org/x/crypto/ssh"
)

const result = "fived-client result: "

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "fived-client: "+format+"\n", args...)
	os.Exit(1)
}

func openFailed(err error) {
	var refused *ssh.OpenChannelError
	if errors.As(err, &refused) {
		fmt.Fprintf(os.Stderr, "fived-client open-failed: %s\n", refused.Error())
		os.Exit(2)
	}
	fail("open: %v", err)
}

// send copies the input file, then half-closes with closeWrite.
func send(w io.Writer, closeWrite func() error, path string, done *sync.WaitGroup) {
	defer done.Done()
	if path != "" {
		source, err := os.Open(path)
		if err != nil {
			fail("%v", err)
		}
		defer source.Close()
		if _, err := io.Copy(w, source); err != nil {
			// The service went away first: its output says what happened.
			fmt.Fprintf(os.Stderr, "fived-client send stopped: %v\n", err)
		}
	}
	if err := closeWrite(); err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintf(os.Stderr, "fived-client close-write: %v\n", err)
	}
}

func main() {
	version := flag.Bool("version", false, "print the library and Go versions")
	port := flag.Int("port", 0, "fived's port on 127.0.0.1")
	user := flag.String("user", "", "SSH user name")
	keyPath := flag.String("key", "", "private key file (OpenSSH format)")
	form := flag.String("form", "", "direct-tcpip, exec or subsystem")
	service := flag.String("service", "", "the service name")
	input := flag.String("input", "", "file to send, then EOF")
	flag.Parse()
	if *version {
		fmt.Printf("golang.org/x/crypto/ssh (Debian golang-golang-x-crypto-dev) with %s\n", runtime.Version())
		return
	}

	pem, err := os.ReadFile(*keyPath)
	if err != nil {
		fail("%v", err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		fail("key %s: %v", *keyPath, err)
	}
	config := &ssh.ClientConfig{
		User:            *user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
	}
	client, err := ssh.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)), config)
	if err != nil {
		fail("connect: %v", err)
	}
	defer client.Close()

	var done sync.WaitGroup
	if *form == "direct-tcpip" {
		conn, err := client.Dial("tcp", net.JoinHostPort(*service, "1"))
		if err != nil {
			openFailed(err)
		}
		halfCloser, ok := conn.(interface{ CloseWrite() error })
		if !ok {
			fail("the direct-tcpip connection cannot half-close")
		}
		done.Add(1)
		go send(conn, halfCloser.CloseWrite, *input, &done)
		if _, err := io.Copy(os.Stdout, conn); err != nil {
			fail("read: %v", err)
		}
		done.Wait()
		fmt.Fprintln(os.Stderr, result+"none")
		return
	}

	if *form == "subsystem" {
		subsystem(client, *service, *input)
		return
	}
	session, err := client.NewSession()
	if err != nil {
		openFailed(err)
	}
	stdin, err := session.StdinPipe()
	if err != nil {
		fail("%v", err)
	}
	session.Stdout = os.Stdout
	session.Stderr = os.Stderr
	if *form != "exec" {
		fail("unknown form %q", *form)
	}
	if err := session.Start(*service); err != nil {
		fail("exec %s refused: %v", *service, err)
	}
	done.Add(1)
	go send(stdin, stdin.Close, *input, &done)
	err = session.Wait()
	done.Wait()
	var exit *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case err == nil:
		fmt.Fprintln(os.Stderr, result+"exit-status=0")
	case errors.As(err, &exit) && exit.Signal() != "":
		fmt.Fprintln(os.Stderr, result+"exit-signal="+exit.Signal())
	case errors.As(err, &exit):
		fmt.Fprintf(os.Stderr, "%sexit-status=%d\n", result, exit.ExitStatus())
	case errors.As(err, &missing):
		fmt.Fprintln(os.Stderr, result+"none")
	default:
		fail("wait: %v", err)
	}
}

// subsystem runs the subsystem form on a session channel of its own: Session's
// RequestSubsystem does not start the session, so its Wait cannot report the
// exit status; the channel's requests carry it.
func subsystem(client *ssh.Client, name, input string) {
	channel, requests, err := client.OpenChannel("session", nil)
	if err != nil {
		openFailed(err)
	}
	outcome := make(chan string, 1)
	go func() {
		reported := "none"
		for request := range requests {
			switch request.Type {
			case "exit-status":
				var status struct{ Status uint32 }
				if ssh.Unmarshal(request.Payload, &status) == nil {
					reported = fmt.Sprintf("exit-status=%d", status.Status)
				}
			case "exit-signal":
				var signal struct {
					Signal     string
					CoreDumped bool
					Error      string
					Lang       string
				}
				if ssh.Unmarshal(request.Payload, &signal) == nil {
					reported = "exit-signal=" + signal.Signal
				}
			}
			if request.WantReply {
				request.Reply(false, nil)
			}
		}
		outcome <- reported
	}()
	ok, err := channel.SendRequest("subsystem", true, ssh.Marshal(struct{ Name string }{name}))
	if err != nil || !ok {
		fail("subsystem %s refused: %v", name, err)
	}
	var done sync.WaitGroup
	done.Add(2)
	go send(channel, channel.CloseWrite, input, &done)
	go func() {
		defer done.Done()
		io.Copy(os.Stderr, channel.Stderr())
	}()
	if _, err := io.Copy(os.Stdout, channel); err != nil {
		fail("read: %v", err)
	}
	done.Wait()
	channel.Close()
	fmt.Fprintln(os.Stderr, result+<-outcome)
}
