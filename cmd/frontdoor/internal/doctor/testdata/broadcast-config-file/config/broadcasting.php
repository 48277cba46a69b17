<?php

return [

    'default' => env('BROADCAST_DRIVER', 'null'),

    'connections' => [],
];
