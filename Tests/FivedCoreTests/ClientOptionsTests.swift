import Testing

@testable import FivedCore

@Suite struct ClientOptionsTests {
    let env = ClientEnvironment(home: "/home/me", localUser: "me")

    func resolve(_ cl: ClientCommandLine, _ config: String? = nil) throws -> ClientOptions {
        let file = try config.map { try SSHConfigFile(text: $0, path: "cfg") }
        return try ClientOptions.resolve(commandLine: cl, config: file, environment: env)
    }

    @Test func defaults() throws {
        let o = try resolve(ClientCommandLine(destination: "example.org"))
        #expect(o.alias == "example.org")
        #expect(o.hostName == "example.org")
        #expect(o.port == 1)
        #expect(o.user == "me")
        #expect(o.identityFiles == ["/home/me/.ssh/id_ed25519", "/home/me/.ssh/id_ecdsa", "/home/me/.ssh/id_rsa"])
        #expect(o.knownHostsFile == "/home/me/.ssh/known_hosts")
        #expect(o.strictHostKeyChecking == .yes)
        #expect(o.knownHostsName == "[example.org]:1")
    }

    @Test func aliasFromConfig() throws {
        let o = try resolve(
            ClientCommandLine(destination: "box"),
            """
            Host box
              HostName 10.1.2.3
              Port 2222
              User alice
              IdentityFile ~/.ssh/box_%r_%h
              UserKnownHostsFile ~/.ssh/kh_%n other_file
              StrictHostKeyChecking accept-new
            Host *
              Port 9
              User nobody
              IdentityFile ~/.ssh/all
            """)
        #expect(o.hostName == "10.1.2.3")
        #expect(o.port == 2222)
        #expect(o.user == "alice")
        #expect(o.identityFiles.prefix(2) == ["/home/me/.ssh/box_alice_10.1.2.3", "/home/me/.ssh/all"])
        #expect(o.knownHostsFile == "/home/me/.ssh/kh_box")
        #expect(o.strictHostKeyChecking == .acceptNew)
        #expect(o.knownHostsName == "[10.1.2.3]:2222")
    }

    @Test func commandLineWinsThenDashOThenConfig() throws {
        let config = "Port 5\nUser cfg\nStrictHostKeyChecking no\n"
        let o = try resolve(
            ClientCommandLine(
                destination: "u@h", port: 7, user: "flag", identityFiles: ["~/k"],
                options: ["StrictHostKeyChecking=yes", "Port 8", "IdentityFile=/o/k"]), config)
        #expect(o.port == 7)
        #expect(o.user == "flag")
        #expect(o.strictHostKeyChecking == .yes)
        #expect(o.identityFiles.prefix(2) == ["/home/me/k", "/o/k"])
        let p = try resolve(ClientCommandLine(destination: "u@h", options: ["Port=8"]), config)
        #expect(p.port == 8)
        #expect(p.user == "cfg")
        let q = try resolve(ClientCommandLine(destination: "u@h"), "Port 5\n")
        #expect(q.user == "u")
    }

    @Test func hostNameTokenAndUserAtLastAt() throws {
        let o = try resolve(ClientCommandLine(destination: "a@b@web"), "Host web\n HostName %h.example.net\n")
        #expect(o.user == "a@b")
        #expect(o.hostName == "web.example.net")
    }

    @Test func strictHostKeyCheckingValues() {
        #expect(StrictHostKeyChecking(configValue: "ask") == .yes)
        #expect(StrictHostKeyChecking(configValue: "Accept-New") == .acceptNew)
        #expect(StrictHostKeyChecking(configValue: "off") == .no)
        #expect(StrictHostKeyChecking(configValue: "maybe") == nil)
    }

    @Test func unknownDashOIsReportedNotFatal() throws {
        let o = try resolve(ClientCommandLine(destination: "h", options: ["ForwardAgent=yes"]))
        #expect(o.ignored == ["forwardagent"])
    }

    @Test(arguments: [["Port=abc"], ["Port=0"], ["StrictHostKeyChecking=perhaps"], ["Host=x"], ["ConnectTimeout=-1"], [""]])
    func badOptionsFail(_ options: [String]) {
        #expect(throws: FivedCoreError.self) { try resolve(ClientCommandLine(destination: "h", options: options)) }
    }

    @Test func badConfigValueNamesFileAndLine() throws {
        let error = try #require(thrown { _ = try resolve(ClientCommandLine(destination: "h"), "\nPort nope\n") })
        #expect(error.message.contains("cfg:2"))
    }

    @Test func emptyHostOrUserRejected() {
        #expect(throws: FivedCoreError.self) { try resolve(ClientCommandLine(destination: "u@")) }
        #expect(throws: FivedCoreError.self) { try resolve(ClientCommandLine(destination: "@h")) }
    }

    @Test func certificateFilesAccumulateFromDashOThenConfig() throws {
        let o = try resolve(
            ClientCommandLine(destination: "box", options: ["CertificateFile=~/.ssh/%r-cert.pub"]),
            """
            Host box
              User alice
              CertificateFile ~/certs/%n.pub
              CertificateFile ~/certs/box.pub
            """)
        #expect(o.certificateFiles == ["/home/me/.ssh/alice-cert.pub", "/home/me/certs/box.pub"])
        #expect(o.ignored.isEmpty)
        #expect(try resolve(ClientCommandLine(destination: "h")).certificateFiles.isEmpty)
    }

    @Test func globalKnownHostsFile() throws {
        #expect(try resolve(ClientCommandLine(destination: "h")).globalKnownHostsFile == "/etc/ssh/ssh_known_hosts")
        #expect(try resolve(ClientCommandLine(destination: "h", options: ["GlobalKnownHostsFile=none"])).globalKnownHostsFile == "/dev/null")
        #expect(try resolve(ClientCommandLine(destination: "h"), "GlobalKnownHostsFile ~/g1 ~/g2\n").globalKnownHostsFile == "/home/me/g1")
    }

    @Test func defaultIdentities() {
        #expect(ClientOptions.isDefaultIdentity("/home/me/.ssh/id_rsa"))
        #expect(!ClientOptions.isDefaultIdentity("/home/me/.ssh/id_rsa_work"))
    }
}
