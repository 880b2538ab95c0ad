from django.urls import path

from chat import console_views, widget_views

app_name = "chat"

urlpatterns = [
    path("chat/widget/<str:key>/frame/", widget_views.widget_frame, name="widget_frame"),
    path("chat/widget/<str:key>/config.json", widget_views.widget_config, name="widget_config"),
    path("chat/widget/<str:key>/session", widget_views.widget_session, name="widget_session"),
    path("chat/widgets/", console_views.widget_list, name="widgets"),
    path("chat/widgets/<int:widget_id>/", console_views.widget_detail, name="widget"),
    path("console/", console_views.console, name="console"),
    path("console/canned/", console_views.canned_replies, name="canned"),
    path("console/insights/", console_views.insights_page, name="insights"),
    path("console/export/", console_views.export_transcripts, name="export"),
    path("console/visitors/<int:visitor_id>/erase/", console_views.erase_visitor_data, name="erase_visitor"),
    path("console/<int:conversation_id>/", console_views.conversation_detail, name="conversation"),
    path("console/<int:conversation_id>/live/", console_views.conversation_live, name="conversation_live"),
    path("console/<int:conversation_id>/<str:action>/", console_views.conversation_action, name="conversation_action"),
]
