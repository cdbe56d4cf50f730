// Processes seen through /proc: finding the appliance's children, checking nothing is left.
import fs from 'node:fs';

/** Every process: pid, state letter (R, S, Z, ...), ppid and command line (args joined by spaces). */
export function listProcesses() {
  const out = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    try {
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      // "pid (comm) S ppid ...": comm may contain spaces and parentheses.
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.push({ pid, state: rest[0], ppid: Number(rest[1]), cmdline });
    } catch {
      // Gone while we looked.
    }
  }
  return out;
}

/** Processes other than this one whose command line contains `text`. */
export function processesMentioning(text) {
  return listProcesses().filter((p) => p.pid !== process.pid && p.cmdline.includes(text));
}

/** The state letter of `pid`, or null when no such process exists. */
export function processState(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return null;
  }
}

/** The resident set size of `pid` in kB (VmRSS), or null. */
export function rssKb(pid) {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}
