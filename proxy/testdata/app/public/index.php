<?php
// Front controller of the proxy tests' Laravel-shaped app (never served as source).
// Each route shows one thing frontdoor must get right; "/" echoes what PHP saw.

$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);

switch ($path) {
case '/upload':
    // Raw or multipart upload: report what arrived.
    $out = ['method' => $_SERVER['REQUEST_METHOD'], 'content_length' => $_SERVER['CONTENT_LENGTH'] ?? null];
    if (!empty($_FILES)) {
        $f = reset($_FILES);
        $out['file_sha256'] = hash_file('sha256', $f['tmp_name']);
        $out['file_size'] = $f['size'];
        $out['file_error'] = $f['error'];
        $out['fields'] = (object)$_POST;
    } else {
        $ctx = hash_init('sha256');
        $in = fopen('php://input', 'rb');
        $n = 0;
        while (!feof($in)) {
            $chunk = fread($in, 65536);
            $n += strlen($chunk);
            hash_update($ctx, $chunk);
        }
        $out['body_sha256'] = hash_final($ctx);
        $out['body_length'] = $n;
    }
    header('Content-Type: application/json');
    echo json_encode($out);
    break;

case '/download':
    // Deterministic bytes: block i is 64 KiB of chr(i % 256), i from 0.
    $blocks = (int)($_GET['blocks'] ?? 16);
    header('Content-Type: application/octet-stream');
    if (isset($_GET['length'])) {
        header('Content-Length: ' . ($blocks * 65536));
    }
    for ($i = 0; $i < $blocks; $i++) {
        echo str_repeat(chr($i % 256), 65536);
    }
    break;

case '/stream':
    // First chunk now; the last one only once the test has created the file it names.
    header('Content-Type: text/event-stream');
    header('X-Accel-Buffering: no');
    echo "data: first\n\n";
    flush();
    $file = $_GET['file'];
    for ($i = 0; $i < 600 && !file_exists($file); $i++) {
        usleep(50000);
    }
    echo file_exists($file) ? "data: last\n\n" : "data: gave up\n\n";
    break;

case '/text':
    // Compression: n repetitions of a line, with the type and headers the query asks for.
    header('Content-Type: ' . ($_GET['type'] ?? 'text/html; charset=UTF-8'));
    if (isset($_GET['cc'])) {
        header('Cache-Control: ' . $_GET['cc']);
    }
    if (isset($_GET['etag'])) {
        header('ETag: "' . $_GET['etag'] . '"');
        $tags = array_map('trim', explode(',', $_SERVER['HTTP_IF_NONE_MATCH'] ?? ''));
        if (in_array('"' . $_GET['etag'] . '"', $tags, true)) {
            http_response_code(304); // as Laravel's $response->isNotModified($request)
            break;
        }
    }
    $text = str_repeat("hello from frontdoor's php\n", (int)($_GET['n'] ?? 200));
    if (isset($_GET['gzip'])) {
        header('Content-Encoding: gzip');
        $text = gzencode($text);
    }
    echo $text;
    break;

case '/stream-html':
    // A streamed page: a first part now, the rest once the test has created the file it names.
    header('Content-Type: text/html');
    echo str_repeat("<p>first part</p>\n", 100);
    flush();
    $file = $_GET['file'];
    for ($i = 0; $i < 600 && !file_exists($file); $i++) {
        usleep(50000);
    }
    echo str_repeat("<p>second part</p>\n", 100);
    break;

case '/sendfile':
    // A download handed to frontdoor, as Symfony's BinaryFileResponse does once
    // trustXSendfileTypeHeader() is on: only when the front server offered it.
    if (($_SERVER['HTTP_X_SENDFILE_TYPE'] ?? '') !== 'X-Sendfile' && !isset($_GET['always'])) {
        echo 'no X-Sendfile-Type';
        break;
    }
    if (isset($_GET['type'])) {
        header('Content-Type: ' . $_GET['type']);
    }
    header('Content-Disposition: attachment; filename="report.txt"');
    header('Cache-Control: private, max-age=60');
    header('ETag: "php-etag"');
    if (!isset($_GET['body'])) {
        header('Content-Length: 999999'); // the file's, as Symfony sets it; the body stays empty
    }
    header((isset($_GET['accel']) ? 'X-Accel-Redirect: ' : 'X-Sendfile: ') . $_GET['path']);
    if (isset($_GET['status'])) {
        http_response_code((int)$_GET['status']);
    }
    if (isset($_GET['body'])) {
        // A body PHP should not have sent, large enough to stream: dropped for the file.
        echo str_repeat('x', 200000);
        flush();
    }
    break;

case '/broadcasting/auth':
case '/broadcasting/user-auth':
    // Laravel's broadcasting routes, taking ?ms= (the authorization lane's tests).
    usleep((int)($_GET['ms'] ?? 0) * 1000);
    header('Content-Type: application/json');
    echo json_encode(['auth' => 'key:signature']);
    break;

case '/slow':
    usleep((int)($_GET['ms'] ?? 3000) * 1000);
    echo "slow done";
    break;

case '/cookies':
    setcookie('first', 'one', ['path' => '/', 'httponly' => true]);
    setcookie('second', 'two', ['path' => '/', 'samesite' => 'Lax']);
    echo "cookies set";
    break;

case '/status':
    http_response_code(422);
    header('Content-Type: application/json');
    echo json_encode(['message' => 'The given data was invalid.']);
    break;

case '/redirect':
    header('Location: /dashboard');
    break;

case '/big-header':
    // A header line over 1 KiB hangs some Go FastCGI clients.
    header('X-Big: ' . str_repeat('b', (int)($_GET['n'] ?? 2000)));
    echo "big header";
    break;

case '/stderr':
    error_log('something went wrong in PHP');
    echo "logged";
    break;

case '/no-content':
    http_response_code(204);
    break;

default:
    $server = [];
    foreach ($_SERVER as $k => $v) {
        if (is_string($v)) {
            $server[$k] = $v;
        }
    }
    $body = file_get_contents('php://input');
    header('Content-Type: application/json');
    header('X-Powered-By: PHP/test');
    echo json_encode([
        'server' => $server,
        'headers' => (object)(function_exists('getallheaders') ? getallheaders() : []),
        'cookies' => (object)$_COOKIE,
        'get' => (object)$_GET,
        'post' => (object)$_POST,
        'body_sha256' => hash('sha256', $body),
        'body_length' => strlen($body),
    ]);
}
