package termtext

// Terminal output captured from real programs in a pty (80x24,
// TERM=xterm-256color, bash 5 with readline and a coloured prompt, vim 9
// with -u NONE), for the session tests and the fuzz corpus.

// capturedBash: a typo fixed with backspaces, a failed tab completion
// (BEL), history recall with the arrow keys, Ctrl-A and "# " to comment a
// line out, a \r progress display, seq, clear, exit.
const capturedBash = "\x1b[?2004h\x1b[01;32mu@h\x1b[00m:\x1b[01;34m~\x1b[00m# echo hello wrold\b\x1b[K\b\x1b[K\b\x1b[K\b\x1b[Korld\r\n" +
	"\x1b[?2004l\rhello world\r\n" +
	"\x1b[?2004h\x1b[01;32mu@h\x1b[00m:\x1b[01;34m~\x1b[00m# ls -la /etc/host\a\r\n" +
	"\x1b[?2004l\rls: cannot access '/etc/host': No such file or directory\r\n" +
	"\x1b[?2004h\x1b[01;32mu@h\x1b[00m:\x1b[01;34m~\x1b[00m# echo first\r\n" +
	"\x1b[?2004l\rfirst\r\n" +
	"\x1b[?2004h\x1b[01;32mu@h\x1b[00m:\x1b[01;34m~\x1b[00m# echo second\r\n" +
	"\x1b[?2004l\rsecond\r\n" +
	"\x1b[?2004h\x1b[01;32mu@h\x1b[00m:\x1b[01;34m~\x1b[00m# echo second\b\b\b\b\b\b\x1b[1Pfirst\b\b\b\b\bsecond\r\n" +
	"\x1b[?2004l\rsecond\r\n" +
	"\x1b[?2004h\x1b[01;32mu@h\x1b[00m:\x1b[01;34m~\x1b[00m# echo abc\b\b\b\b\b\b\b\b\x1b[2@# \r\n" +
	"\x1b[?2004l\r\x1b[?2004h\x1b[01;32mu@h\x1b[00m:\x1b[01;34m~\x1b[00m# for i in 1 2 3; do printf \"progress %d%%\\r\" $((i*3" +
	"3)); sleep 0.1; done; echo\r\n" +
	"\x1b[?2004l\rprogress 33%\rprogress 66%\rprogress 99%\r\r\n" +
	"\x1b[?2004h\x1b[01;32mu@h\x1b[00m:\x1b[01;34m~\x1b[00m# seq 1 30\r\n" +
	"\x1b[?2004l\r1\r\n" +
	"2\r\n" +
	"3\r\n" +
	"4\r\n" +
	"5\r\n" +
	"6\r\n" +
	"7\r\n" +
	"8\r\n" +
	"9\r\n" +
	"10\r\n" +
	"11\r\n" +
	"12\r\n" +
	"13\r\n" +
	"14\r\n" +
	"15\r\n" +
	"16\r\n" +
	"17\r\n" +
	"18\r\n" +
	"19\r\n" +
	"20\r\n" +
	"21\r\n" +
	"22\r\n" +
	"23\r\n" +
	"24\r\n" +
	"25\r\n" +
	"26\r\n" +
	"27\r\n" +
	"28\r\n" +
	"29\r\n" +
	"30\r\n" +
	"\x1b[?2004h\x1b[01;32mu@h\x1b[00m:\x1b[01;34m~\x1b[00m# clear\r\n" +
	"\x1b[?2004l\r\x1b[H\x1b[2J\x1b[3J\x1b[?2004h\x1b[01;32mu@h\x1b[00m:\x1b[01;34m~\x1b[00m# echo after clear\r\n" +
	"\x1b[?2004l\rafter clear\r\n" +
	"\x1b[?2004h\x1b[01;32mu@h\x1b[00m:\x1b[01;34m~\x1b[00m# exit\r\n" +
	"\x1b[?2004l\rexit\r\n"

// capturedVim: open a file, append a line (o, text, Escape), :wq, then a
// command at the prompt.
const capturedVim = "\x1b[?2004h\x1b[01;32mu@h\x1b[00m:\x1b[01;34m~\x1b[00m# vim -u NONE /tmp/ttcap/notes.txt\r\n" +
	"\x1b[?2004l\r\x1b[?1049h\x1b[22;0;0t\x1b[>4;2m\x1b[?1h\x1b=\x1b[?2004h\x1b[1;24r\x1b[?12h\x1b[?12l\x1b[22;2t\x1b[22;1t\x1b[27m\x1b[23m\x1b[29m\x1b[m\x1b" +
	"[H\x1b[2J\x1b[?25l\x1b[24;1H\"~/notes.txt\" 2 lines, 43 bytes\x1b[1;1Hdeploy on friday\r\n" +
	"rollback plan: revert tag\r\n" +
	"\x1b[94m~                                                                               \x1b[4;1H~        " +
	"                                                                       \x1b[5;1H~                      " +
	"                                                         \x1b[6;1H~                                    " +
	"                                           \x1b[7;1H~                                                  " +
	"                             \x1b[8;1H~                                                                " +
	"               \x1b[9;1H~                                                                              " +
	" \x1b[10;1H~                                                                               \x1b[11;1H~    " +
	"                                                                           \x1b[12;1H~                 " +
	"                                                              \x1b[13;1H~                              " +
	"                                                 \x1b[14;1H~                                           " +
	"                                    \x1b[15;1H~                                                        " +
	"                       \x1b[16;1H~                                                                     " +
	"          \x1b[17;1H~                                                                               \x1b[1" +
	"8;1H~                                                                               \x1b[19;1H~        " +
	"                                                                       \x1b[20;1H~                     " +
	"                                                          \x1b[21;1H~                                  " +
	"                                             \x1b[22;1H~                                               " +
	"                                \x1b[23;1H~                                                            " +
	"                   \x1b[1;1H\x1b[?25h\x1b[?4m\r\n" +
	"\x1b[?2004l\x1b[>4;m\x1b[?25l\x1b[m\x1b[3;1H\x1b[K\x1b[3;1H\x1b[?25h\x1b[?25lcall oncall: bob\x1b[?25h\x1b[?2004h\x1b[>4;2m\b\x1b[?4m\x1b[?25l\x1b" +
	"[24;1H\x1b[K\x1b[24;1H:wq\x1b[?25h\r\x1b[?25l\x1b[?2004l\x1b[>4;m\"notes.txt\" 3 lines, 60 bytes written\r\x1b[23;2t\x1b[23;1t\r\r" +
	"\n" +
	"\x1b[?2004l\x1b[?1l\x1b>\x1b[?1049l\x1b[23;0;0t\x1b[?25h\x1b[>4;m\x1b[?2004h\x1b[01;32mu@h\x1b[00m:\x1b[01;34m~\x1b[00m# echo done\r\n" +
	"\x1b[?2004l\rdone\r\n" +
	"\x1b[?2004h\x1b[01;32mu@h\x1b[00m:\x1b[01;34m~\x1b[00m# exit\r\n" +
	"\x1b[?2004l\rexit\r\n"
