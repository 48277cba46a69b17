<?php return array (
  'app' => 
  array (
    'name' => 'Laravel',
    'env' => 'production',
  ),
  'broadcasting' => 
  array (
    'default' => 'reverb',
    'connections' => 
    array (
      'reverb' => 
      array (
        'driver' => 'reverb',
        'key' => 'q8v2mfk3w9xh4tlp0zna',
        'secret' => '0ldsecret0ldsecret00',
        'app_id' => '123456',
        'options' => 
        array (
          'host' => 'app.example.com',
          'port' => '443',
          'scheme' => 'https',
          'useTLS' => true,
        ),
        'client_options' => 
        array (
        ),
      ),
      'log' => 
      array (
        'driver' => 'log',
      ),
      'null' => 
      array (
        'driver' => 'null',
      ),
    ),
  ),
  'reverb' => 
  array (
    'default' => 'reverb',
    'apps' => 
    array (
      'provider' => 'config',
      'apps' => 
      array (
        0 => 
        array (
          'key' => 'q8v2mfk3w9xh4tlp0zna',
          'secret' => '0ldsecret0ldsecret00',
          'app_id' => '123456',
          'allowed_origins' => 
          array (
            0 => '*',
          ),
          'ping_interval' => 60,
          'max_message_size' => 10000,
        ),
      ),
    ),
  ),
  'cache' => 
  array (
    'prefix' => 'laravel_cache_',
    'weird' => 'it\'s a \\ test' . "\0" . '',
    'ratio' => 0.5,
    'none' => NULL,
    'enum' => \App\Enums\Mode::Fast,
  ),
);
