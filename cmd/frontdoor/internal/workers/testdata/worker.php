<?php
// A stand-in for `php artisan queue:work`, for the supervisor's tests: it takes "jobs" from a
// directory, one file per job (job-*), and handles SIGTERM as Laravel's worker does — the current
// job finishes, then the process exits 0.
//
//   php worker.php <dir>
//
// A job is claimed by moving it to <dir>/claimed/, takes the milliseconds its file holds (200 when
// empty), and ends in <dir>/done/. A file in claimed/ after the worker exited is a job cut short.
// job-crash is moved to done/ and makes the worker exit 3 (once); job-crashloop makes every worker
// exit 3 and stays, so every restart crashes again.
//
// Environment: WORKER_IGNORE_TERM=1 ignores SIGTERM (to be SIGKILLed); WORKER_FLOOD=N prints N
// lines at start; WORKER_PING_URL=url is fetched after each job, printing "ping reached" or
// "ping failed".
declare(strict_types=1);

$dir = $argv[1] ?? null;
if ($dir === null) {
    fwrite(STDERR, "usage: php worker.php <jobs dir>\n");
    exit(64);
}
@mkdir("$dir/claimed");
@mkdir("$dir/done");

$stop = false;
pcntl_async_signals(true);
if (getenv('WORKER_IGNORE_TERM') === '1') {
    pcntl_signal(SIGTERM, SIG_IGN);
} else {
    pcntl_signal(SIGTERM, function () use (&$stop): void {
        $stop = true;
        echo "SIGTERM: finishing the current job\n";
    });
}

$flood = (int) getenv('WORKER_FLOOD');
for ($i = 0; $i < $flood; $i++) {
    echo "flood line $i\n";
}
echo "worker ready pid " . getmypid() . "\n";

while (!$stop) {
    $jobs = glob("$dir/job-*") ?: [];
    sort($jobs);
    if ($jobs === []) {
        usleep(20000);
        continue;
    }
    $name = basename($jobs[0]);
    if ($name === 'job-crashloop') {
        fwrite(STDERR, "crash loop: exiting 3\n");
        exit(3);
    }
    if (!@rename("$dir/$name", "$dir/claimed/$name")) {
        continue; // another copy took it
    }
    if ($name === 'job-crash') {
        rename("$dir/claimed/$name", "$dir/done/$name");
        fwrite(STDERR, "crashing on purpose: exiting 3\n");
        exit(3);
    }
    $ms = (int) trim((string) file_get_contents("$dir/claimed/$name"));
    if ($ms <= 0) {
        $ms = 200;
    }
    echo "start $name\n";
    // hrtime, not one usleep: a signal interrupts usleep, and the job must still take its time.
    $end = hrtime(true) + $ms * 1000000;
    while (hrtime(true) < $end) {
        usleep(5000);
    }
    rename("$dir/claimed/$name", "$dir/done/$name");
    echo "done $name\n";
    if (($url = getenv('WORKER_PING_URL')) !== false && $url !== '') {
        // As a job that broadcasts when it ends: any HTTP answer means frontdoor still listened.
        $ctx = stream_context_create(['http' => ['ignore_errors' => true, 'timeout' => 5]]);
        echo @file_get_contents($url, false, $ctx) === false ? "ping failed\n" : "ping reached\n";
    }
}
echo "stopped after SIGTERM\n";
exit(0);
